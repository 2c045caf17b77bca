"""The course experiments' measurements in one dated result file, from which docs/experiments.md's table is made.

    .venv/bin/python benchmarks/experiment_results.py interpolation          # one or more experiment names

Each named experiment is run full size by `genjax.lab.run`, the code of `make experiment NAME=<name>` (its models
are trained into runs/experiments/<name>/, or reused from there when trained before), and its results.json (what it
measured, each model's steps, training time and images/s, the wall time) becomes a record. Results:
benchmarks/results/<device>-<date>-experiments.json, written after each experiment; a later run of the same day adds
its experiments to that file (an experiment measured again replaces its record; suite.write_merged).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite import dated_result, this_device, write_merged  # noqa: E402 -- benchmarks/suite.py

from genjax import lab, train  # noqa: E402
from genjax.errors import UserError  # noqa: E402
from genjax.eval import provenance  # noqa: E402


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("names", nargs="+", help="experiments (make experiment's NAME)")
  p.add_argument("--note", default="", help="a sentence for the results, e.g. what else shared the machine")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  p.add_argument("--root", default=None, help="where the experiments' runs go (default runs/experiments)")
  a = p.parse_args(argv)
  where = this_device()
  out = dated_result(a.out_dir, where, "experiments")
  result = {"kind": "experiments", "date": datetime.date.today().isoformat(), **where, **provenance.environment(),
            "commands": ["benchmarks/experiment_results.py " + " ".join(argv or sys.argv[1:])], "note": a.note,
            "records": []}
  try:
    for name in a.names:
      measured = lab.run(name, root=pathlib.Path(a.root) if a.root else None)
      result["records"].append({k: v for k, v in measured.items() if k != "protocol"})
      written = write_merged(out, result, "experiment")
      print(f"experiments: {name} in {measured['wall_s']:.0f} s")
  except UserError as e:
    print(f"experiments: error: {e}", file=sys.stderr)
    return 2
  except train.Interrupted as e:  # SIGTERM or SIGINT while a model trained: its checkpoint is saved
    print(f"experiments: {e}; the experiments measured before it are in {out}", file=sys.stderr)
    return 128 + e.signum
  print(f"experiments: {len(written['records'])} experiments -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
