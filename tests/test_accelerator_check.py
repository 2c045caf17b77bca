"""benchmarks/accelerator.sh, the prepared accelerator check: its arguments, its budget and its summary. (The whole
check was run on the 2-core CPU, offline; see docs/performance.md.)"""

import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "accelerator.sh"


def run(tmp_path, **env):
  env = {**os.environ, "OUT_DIR": str(tmp_path / "results"), "RUN_DIR": str(tmp_path / "runs"), **env}
  return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120)


def test_an_unknown_stage_or_wheel_folder_is_one_line_and_exit_2(tmp_path):
  p = run(tmp_path, STAGES="train bogus")
  assert p.returncode == 2 and p.stderr.strip().startswith("accelerator.sh: unknown stage 'bogus'")
  assert len(p.stderr.strip().splitlines()) == 1
  p = run(tmp_path, WHEELS=str(tmp_path / "nowhere"))
  assert p.returncode == 2 and "is not a folder (make wheelhouse fills one)" in p.stderr


@pytest.mark.slow
def test_stages_past_the_budget_are_skipped_and_the_summary_says_so(tmp_path):
  """A stage starts only with 20 s of the budget left; a failed stage is recorded with its exit status and the next
  one runs. Here a budget of 25 s runs a train stage that fails at once (an unknown model, through GAN_ARGS) and
  skips the rest."""
  p = run(tmp_path, STAGES="train eval test", BUDGET="25", GAN_ARGS="--config.train.steps=-1")
  assert p.returncode == 0, p.stderr
  [summary] = (tmp_path / "results").glob("*-accelerator.json")
  out = json.loads(summary.read_text())
  stages = {s["stage"]: s for s in out["stages"]}
  assert list(stages) == ["train", "eval", "test"] and out["budget_s"] == 25
  assert stages["train"]["exit"] not in (0, None) and not stages["train"]["skipped"]
  assert (tmp_path / "results" / stages["train"]["log"]).exists()
  assert stages["eval"]["skipped"] or stages["test"]["skipped"]
  assert out["platform"] == "cpu" and "versions" in out
  assert not list((tmp_path / "results").glob("*-make-train.json"))  # no result from a failed run
