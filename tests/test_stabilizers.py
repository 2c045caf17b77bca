"""benchmarks/stabilizers.py: every variant is a valid gan config that sets what it names; bad arguments are one line.
(The comparison itself trains 3000-step DCGANs: its results are in benchmarks/results/*-gan-stabilizers.json.)"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import stabilizers  # noqa: E402

from genjax.models import MODELS  # noqa: E402


@pytest.mark.parametrize("name", sorted(stabilizers.VARIANTS))
def test_every_variant_is_a_valid_gan_config_with_its_keys_set(name):
  c = stabilizers.variant_config(name, 0)
  MODELS["gan"].validate(c)
  assert c.train.steps == stabilizers.VARIANTS[name][0].get("train.steps", 3000)  # the base's, unless it sets its own
  for key, value in stabilizers.VARIANTS[name][0].items():
    section, leaf = key.split(".")
    assert c[section][leaf] == value, key
  # Named for the average, or built on today's default's optimizer (stabilizers.NOW), which keeps one (a variant may
  # set its own window).
  on_now = all(stabilizers.VARIANTS[name][0].get(k) == v for k, v in stabilizers.NOW.items() if k.startswith("optim"))
  assert (c.step.ema_decay > 0) == ("ema" in name or on_now)
  # The base is the DCGAN of before 2026-12-06, whatever genjax/configs/gan.py holds today: D's two layers, no
  # minibatch statistic, unless the variant sets them.
  keys = stabilizers.VARIANTS[name][0]
  assert c.model.disc_features == keys.get("model.disc_features", (32, 64))
  assert c.model.minibatch_std == keys.get("model.minibatch_std", False)


def test_an_unknown_variant_is_one_line_and_exit_2(capsys):
  assert stabilizers.main(["--variants", "ema,bogus"]) == 2
  assert capsys.readouterr().err.strip() == (
      f"stabilizers: error: unknown variant 'bogus'; known: {', '.join(stabilizers.VARIANTS)}")
