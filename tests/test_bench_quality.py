"""The time-to-quality benchmark: it stops at the target, reports a missed one, and keeps evaluation off the clock."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import quality  # noqa: E402
from conftest import small_config  # noqa: E402

from genjax import xla  # noqa: E402

TINY = {"fid_samples": 100, "fid_reference": 200, "elbo_examples": 20, "elbo_k": 2, "label_samples": 50, "seed": 0}


def test_gan_stops_at_its_target_and_vae_reports_a_missed_one(untrained_feature_net, tmp_path):
  runs = tmp_path / "runs"
  # FID <= 1e9 holds at the first evaluation; a negative ELBO is never <= 0.
  result = quality.run(["gan", "vae"], {"gan": 1e9, "vae": 0.0}, every=4, max_steps={"gan": 8, "vae": 8},
                       workdir=runs, settings=TINY, configs={m: small_config(m) for m in ("gan", "vae")},
                       log=lambda *_: None)
  gan, vae = result["records"]
  assert result["targets"] == {"gan": {"fid": 1e9}, "vae": {"neg_elbo": 0.0}} and result["settings"] == TINY
  assert result["malloc"] == xla.host_malloc()

  assert gan["reached"] and gan["steps_to_target"] == gan["steps_trained"] == 4  # stopped: never trained to 8
  [e] = gan["evaluations"]
  assert 0 < e["fid"] <= gan["target"] and gan["best"] == {"value": e["fid"], "step": 4}
  assert sorted(p.name for p in (runs / "gan" / "checkpoints").iterdir()) == ["4"]

  assert not vae["reached"] and vae["steps_to_target"] is None and vae["time_to_target_s"] is None
  assert [e["step"] for e in vae["evaluations"]] == [4, 8]
  assert vae["best"]["value"] == min(e["neg_elbo"] for e in vae["evaluations"]) > 0
  assert vae["best"]["step"] in (4, 8) and vae["steps_trained"] == 8

  for r in (gan, vae):
    assert all(e["eval_s"] > 0 and e["train_s"] > 0 for e in r["evaluations"])
    assert r["train_s"] == pytest.approx(sum(e["train_s"] + e["compile_s"] for e in r["evaluations"]), abs=0.1)
    # The loop's own record, summed over the resumed segments, matches: the evaluations are not on the clock.
    timing = json.loads((runs / r["model"] / "timing.json").read_text())
    assert timing["steps"] == r["steps_trained"] and timing["train_s"] == pytest.approx(r["train_s"], abs=0.2)
  assert gan["time_to_target_s"] == gan["train_s"]

  path = quality.write({**result, "quick": False, "note": "Shared with a test run."}, tmp_path / "out")
  assert path.name.endswith("-quality.json")
  saved = json.loads(path.read_text())
  assert saved["records"][0]["target"] == 1e9 and saved["records"][1]["reached"] is False
  md = path.with_suffix(".md").read_text()
  assert "| gan | classifier FID | ≤ 1e+09 | 4 |" in md
  assert "| vae | test −ELBO (nats) | ≤ 0 | not reached | — |" in md and "| 8 | " in md
  assert "Shared with a test run." in md


def test_a_label_accuracy_is_reached_at_or_above_its_target(untrained_feature_net, tmp_path):
  """Higher is better for the conditional models' label accuracy: a target of 0 is met at the first evaluation, one
  above 1 never, and the best is the highest; each interval is the model's own."""
  configs = {"cgan": small_config("cgan"), "cvae": small_config("cvae")}
  result = quality.run(["cgan", "cvae"], {"cgan": 0.0, "cvae": 1.01}, every={"cgan": 4, "cvae": 2},
                       max_steps={"cgan": 8, "cvae": 4}, workdir=tmp_path / "runs", settings=TINY, configs=configs,
                       log=lambda *_: None)
  cgan, cvae = result["records"]
  assert result["every"] == {"cgan": 4, "cvae": 2} and cgan["metric"] == cvae["metric"] == "label_accuracy"
  assert cgan["reached"] and cgan["steps_to_target"] == cgan["steps_trained"] == 4
  assert 0.0 <= cgan["evaluations"][0]["label_accuracy"] <= 1.0
  assert not cvae["reached"] and [e["step"] for e in cvae["evaluations"]] == [2, 4]
  assert cvae["best"]["value"] == max(e["label_accuracy"] for e in cvae["evaluations"])
  md = quality.summary({**result, "quick": False})
  assert "| cgan | label accuracy | ≥ 0 | 4 |" in md and "| cvae | label accuracy | ≥ 1.01 | not reached |" in md
  assert "Evaluated every 4 (cgan), 2 (cvae) training steps" in md
  assert quality.reached("label_accuracy", 0.97, 0.97) and not quality.reached("fid", 20.01, 20.0)


@pytest.mark.parametrize("args, message", [(["--models", "ae"], "no quality target for 'ae'"),
                                           (["--models", "vae", "--every", "300", "--max-steps", "500"],
                                            "must be a positive multiple")])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, message):
  assert quality.main([*args, "--workdir", str(tmp_path / "runs"), "--out_dir", str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert message in err and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_burda_vae_is_scored_by_make_evals_nll_and_trains_the_b500_schedule(tmp_path):
  """burda_vae trains genjax/configs/burda_b500.py (an iwae at k = 1, batch 500, the paper's 3280 epochs) and is
  scored by the k-sample bound of make eval's likelihood code, which lies below the ELBO's negative."""
  c = quality.default_config("burda_vae")
  assert (c.model.name, c.step.k, c.train.batch_size, c.optim.epoch_steps) == ("iwae", 1, 500, 120)
  assert c.train.steps == 3280 * 120 and c.optim.schedule == "burda" and c.optim.lr == 3e-3
  assert "burda_vae" not in quality.DEFAULT_MODELS and "burda_vae" in quality.METRICS
  settings = {**TINY, "nll_examples": 20, "nll_k": 8}
  result = quality.run(["burda_vae"], {"burda_vae": 1e9}, every=4, max_steps={"burda_vae": 8},
                       workdir=tmp_path / "runs", settings=settings,
                       configs={"burda_vae": small_config("burda_b500")}, log=lambda *_: None)
  [r] = result["records"]
  [e] = r["evaluations"]
  assert r["metric"] == "nll" and r["reached"] and r["steps_to_target"] == 4
  assert 0 < e["nll"] <= e["neg_elbo"] and r["protocol"]["nll"].startswith("the k=8 importance-weighted bound")
  md = quality.summary({**result, "quick": False})
  assert "| burda_vae | test NLL (nats) | ≤ 1e+09 | 4 |" in md
  assert "NLL: the k = 8 importance-weighted bound on 20 test images." in md


def test_the_gan_is_timed_to_the_fid_of_its_untruncated_samples():
  """gan's default draws its samples from truncated latents, which raise FID; its time to a FID is measured on the
  generator's own distribution, the rest of the default config as it is."""
  from genjax import config as cfg
  default, timed = cfg.model_config("gan"), quality.default_config("gan")
  assert default.model.truncation > 0 and timed.model.truncation == 0
  timed.model.truncation = default.model.truncation
  assert timed.to_dict() == default.to_dict()
