"""benchmarks/experiment_results.py: each experiment's results.json becomes a record of the day's experiments file,
written after each one, and an unknown name is one line."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import experiment_results  # noqa: E402

from genjax import lab  # noqa: E402
from genjax.errors import UserError  # noqa: E402


def test_each_experiment_is_a_record_and_a_later_run_of_the_day_adds_to_the_file(tmp_path, monkeypatch):
  ran = []

  def run(name, root=None):
    ran.append((name, root))
    if name == "nope":
      raise UserError("unknown experiment 'nope'; available: pca")
    return {"experiment": name, "value": len(name), "models": {}, "wall_s": 1.0, "protocol": {"quick": False}}

  monkeypatch.setattr(lab, "run", run)
  out = tmp_path / "results"
  assert experiment_results.main(["pca", "--out_dir", str(out), "--root", str(tmp_path / "runs")]) == 0
  assert experiment_results.main(["interpolation", "--out_dir", str(out)]) == 0
  (path,) = out.glob("*-experiments.json")
  written = json.loads(path.read_text())
  assert [r["experiment"] for r in written["records"]] == ["pca", "interpolation"]
  assert written["records"][0] == {"experiment": "pca", "value": 3, "models": {}, "wall_s": 1.0}  # protocol: the file's
  assert ran == [("pca", tmp_path / "runs"), ("interpolation", None)] and written["kind"] == "experiments"


def test_an_unknown_experiment_is_one_line_and_exit_2(tmp_path, capsys):
  assert experiment_results.main(["nope", "--out_dir", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.startswith("experiments: error: unknown experiment 'nope'; available:") and err.count("\n") == 1
