"""The training loop: compiles once, resumes bit for bit, stops on NaN, refuses foreign workdirs, saves on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import chex
import jax.numpy as jnp
import pytest
from conftest import arrays, small_config

from genjax import checkpoint, models, train
from genjax.errors import UserError


@pytest.mark.parametrize("name,k", [("gan", 1), ("ae", 2)])
def test_step_compiles_once_over_many_chunks(tmp_path, name, k):
  c = small_config(name, steps_per_dispatch=k)
  result = train.train(c, tmp_path, quiet=True)
  assert result.steps_per_dispatch == k
  assert result.steps == 8 and (8 // k) > 2
  assert result.compiles == 1
  # a resumed run to a later step also compiles once
  c.train.steps = 12
  assert train.train(c, tmp_path, quiet=True).compiles == 1


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_resume_is_bitwise_identical(tmp_path, name):
  c = small_config(name)
  straight = train.train(c, tmp_path / "a", quiet=True).state
  c.train.steps = 4
  train.train(c, tmp_path / "b", quiet=True)
  c.train.steps = 8
  resumed = train.train(c, tmp_path / "b", quiet=True)
  assert resumed.start_step == 4
  chex.assert_trees_all_equal(arrays(resumed.state), arrays(straight))
  a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
  b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
  drop = lambda r: {k: v for k, v in r.items() if k != "images_per_sec"}
  assert [drop(r) for r in a] == [drop(r) for r in b]


def test_outputs(tmp_path):
  c = small_config("vae")
  train.train(c, tmp_path, quiet=True)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4", "8"]
  names = sorted(p.name for p in (tmp_path / "samples").iterdir())
  assert names == ["curves.png", "reconstructions_000004.png", "reconstructions_000008.png",
                   "samples_000004.png", "samples_000008.png"]
  records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4, 6, 8]
  assert json.loads((tmp_path / "config.json").read_text())["config"]["model"]["name"] == "vae"
  assert list(tmp_path.glob("events.out.tfevents.*"))


def _nan_family():
  """The vae family, with a train step whose loss turns NaN from step 5 on."""
  vae = models.MODELS["vae"]

  def train_step(state, batch, rng, *, beta=1.0, axis_name=None):
    new, metrics = vae.train_step(state, batch, rng, beta=beta)
    metrics["loss"] = jnp.where(state.step >= 5, jnp.nan, metrics["loss"])
    return new, metrics

  members = {k: getattr(vae, k) for k in dir(vae) if not k.startswith("__")}
  return types.SimpleNamespace(**{**members, "train_step": train_step, "__name__": "nan_vae"})


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  monkeypatch.setitem(models.MODELS, "vae", _nan_family())
  c = small_config("vae")
  with pytest.raises(train.Diverged, match=r"loss became nan at step 6; .* last good checkpoint: step 4"):
    train.train(c, tmp_path, quiet=True)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]


def test_workdir_of_another_model_is_refused_and_untouched(tmp_path):
  train.train(small_config("ae", steps=4), tmp_path, quiet=True)
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  config_json = (tmp_path / "config.json").read_text()
  with pytest.raises(UserError, match="holds checkpoints trained with model"):
    train.train(small_config("vae", steps=4), tmp_path, quiet=True)
  c = small_config("ae", steps=8)
  c.model.code_dim = 8
  with pytest.raises(UserError, match="model.code_dim=16"):
    train.train(c, tmp_path, quiet=True)
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before
  assert (tmp_path / "config.json").read_text() == config_json


def test_batch_larger_than_dataset_is_refused(tmp_path):
  c = small_config("ae")
  c.train.batch_size = 1024
  with pytest.raises(UserError, match="larger than the 512 training examples"):
    train.train(c, tmp_path, quiet=True)
  assert not (tmp_path / "checkpoints").exists()


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  args = [sys.executable, "-m", "genjax.main", "train", "--model", "ae", "--workdir", str(tmp_path), "--quiet",
          "--config.data.train_limit=512", "--config.train.batch_size=32", "--config.train.steps=100000",
          "--config.train.log_every=1", "--config.train.checkpoint_every=100000",
          "--config.train.sample_every=100000"]
  proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
  deadline = time.time() + 120
  while not (tmp_path / "metrics.jsonl").exists() or not (tmp_path / "metrics.jsonl").read_text():
    assert time.time() < deadline and proc.poll() is None
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 128 + signal.SIGTERM
  assert "Traceback" not in err and "SIGTERM at step" in err
  step = int(err.split("SIGTERM at step ")[1].split(";")[0])
  assert checkpoint.Checkpoints(tmp_path / "checkpoints").latest_step() == step > 0

