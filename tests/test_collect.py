"""benchmarks/collect.py: a hand-made run becomes a record with the keys that differ from today's default, its
timing and scores, and a command that trains it again; a run without its evaluation is refused in one line."""

import json
import pathlib
import shlex
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import collect  # noqa: E402

from genjax import config as cfg  # noqa: E402


def _run(tmp_path, **keys):
  c = cfg.model_config("cvae")
  cfg.assign(c, keys)
  run = tmp_path / "cvae_small"
  run.mkdir()
  (run / "config.json").write_text(json.dumps({"config": json.loads(c.to_json())}))
  (run / "timing.json").write_text(json.dumps({"steps": c.train.steps, "train_s": 12.5, "devices": ["1 x cpu"]}))
  return run, c


def test_a_run_is_recorded_with_the_keys_that_differ_and_a_command_that_rebuilds_its_config(tmp_path):
  run, c = _run(tmp_path, **{"model.hidden": (64,), "train.steps": 300, "step.beta": 0.5})
  (run / "eval.json").write_text(json.dumps({"label_accuracy": 0.9, "fid": 50.0, "other": 1}))
  r = collect.record(run)
  assert r["set"] == {"model.hidden": (64,), "step.beta": 0.5, "train.steps": 300}
  assert r["scores"] == {"label_accuracy": 0.9, "fid": 50.0} and r["steps"] == 300 and r["train_s"] == 12.5
  words = shlex.split(r["command"].split(" && ")[0])
  args = next(w.removeprefix("ARGS=").split() for w in words if w.startswith("ARGS="))
  again = cfg.model_config("cvae")
  cfg.override(again, cfg.parse_overrides(args))
  assert again.to_dict() == c.to_dict()
  assert "raw_scores" not in r
  (run / "eval-raw.json").write_text(json.dumps({"fid": 60.0, "other": 1}))  # make eval --raw_generator
  assert collect.record(run)["raw_scores"] == {"fid": 60.0}


def test_a_run_without_its_evaluation_is_one_line_and_exit_2(tmp_path, capsys):
  run, _ = _run(tmp_path)
  assert collect.main([str(run), "--tag", "x", "--out_dir", str(tmp_path)]) == 2
  assert capsys.readouterr().err.strip() == (
      f"collect: error: {run}: no eval.json (train it with make train and score it with make eval)")


def test_a_stopped_run_is_recorded_with_its_in_loop_scores_and_no_make_eval_scores(tmp_path):
  """--stopped: a probe stopped before its end has no timing.json or eval.json; its record is the step it reached,
  the median of its logged images/s and its train.eval_every scores, and never a score make eval did not give."""
  run, c = _run(tmp_path, **{"train.steps": 9000})
  (run / "timing.json").unlink()
  rows = [{"step": 50, "images_per_sec": 300.0}, {"step": 100, "images_per_sec": 290.0},
          {"step": 100, "eval_fid": 83.17612}, {"step": 150, "images_per_sec": 310.0}]
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  r = collect.record(run, stopped=True)
  assert r["stopped_at"] == 150 and r["steps"] == 9000 and r["images_per_sec"] == 300.0
  assert r["during_training"] == [{"step": 100, "fid": 83.18}] and "scores" not in r
  assert collect.main([str(run), "--tag", "probe", "--out_dir", str(tmp_path / "out")]) == 2  # not without --stopped
  assert collect.main([str(run), "--tag", "probe", "--out_dir", str(tmp_path / "out"), "--stopped"]) == 0
  (path,) = (tmp_path / "out").glob("*-probe.json")
  assert json.loads(path.read_text())["records"][0]["stopped_at"] == 150
