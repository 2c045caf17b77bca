"""What each run of Burda et al.'s (2015) Table 1 costs here: measured training images/s, and the wall time of the
paper's 3280-epoch schedule at that rate.

    .venv/bin/python benchmarks/burda_cost.py            # every row of RUNS
    .venv/bin/python benchmarks/burda_cost.py --runs 2:1:20,2:50:20 --steps 1000   # layers:k:batch

Each row trains genjax/configs/burda.py (1 stochastic layer) or burda2.py (2 stochastic layers) with the real loop
for `--steps` steps in a temporary directory and reads the run's own images/s (timing.json: compile excluded).
Results: benchmarks/results/<device>-<date>-burda-cost.json, with the exact command of each full run, written after
each row; a later (or a concurrent) run of the same day adds its rows to that file (a row measured again replaces its
record; suite.write_merged).
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite import dated_result, this_device, write_merged  # noqa: E402 -- benchmarks/suite.py

from genjax import config as cfg  # noqa: E402
from genjax import train  # noqa: E402
from genjax.eval import provenance  # noqa: E402

RUNS = [(1, 1, 20), (1, 5, 20), (1, 50, 20), (1, 1, 100), (1, 1, 500), (2, 1, 20), (2, 50, 20)]  # (layers, k, batch)
PAPER = {(1, 1): 86.76, (1, 5): 85.54, (1, 50): 84.78, (2, 1): 85.33, (2, 50): 82.90}  # Table 1, test NLL in nats
CONFIG = {1: ("iwae", "burda"), 2: ("iwae2", "burda2")}  # layers -> (model, config)
EPOCHS = 3280
TRAIN_IMAGES = 60000


def measure(layers: int, k: int, batch: int, steps: int) -> dict:
  model, config = CONFIG[layers]
  c = cfg.model_config(config)
  c.step.k, c.train.batch_size, c.optim.epoch_steps = k, batch, TRAIN_IMAGES // batch
  c.train.steps = steps
  c.train.log_every = c.train.sample_every = c.train.checkpoint_every = steps
  with tempfile.TemporaryDirectory() as tmp:
    r = train.train(c, pathlib.Path(tmp) / "run", quiet=True)
  full_steps = EPOCHS * TRAIN_IMAGES // batch
  name = f"burda{'2' if layers == 2 else ''}_k{k}_b{batch}"
  command = (f"make train MODEL={model} WORKDIR=runs/{name} ARGS=\"--config={config} --config.step.k={k}"
             + (f" --config.train.batch_size={batch} --config.optim.epoch_steps={TRAIN_IMAGES // batch}"
                f" --config.train.steps={full_steps}" if batch != 20 else "") + "\"")
  return {"layers": layers, "k": k, "batch": batch, "steps_timed": steps,
          "images_per_sec": round(r.images_per_sec, 1), "paper_nll": PAPER.get((layers, k)) if batch == 20 else None,
          "paper_schedule_hours": round(EPOCHS * TRAIN_IMAGES / r.images_per_sec / 3600, 2), "command": command}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=3000, help="steps timed per row")
  p.add_argument("--note", default="", help="a sentence for the results, e.g. what else shared the machine")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  p.add_argument("--runs", default=",".join(":".join(map(str, r)) for r in RUNS),
                 help="comma-separated layers:k:batch rows (layers 1 or 2)")
  a = p.parse_args(argv)
  try:
    runs = [tuple(int(v) for v in r.split(":")) for r in a.runs.split(",")]
    if any(len(r) != 3 or r[0] not in CONFIG or r[1] < 1 or r[2] < 1 for r in runs):
      raise ValueError
  except ValueError:
    print(f"burda_cost: error: --runs takes layers:k:batch rows with layers 1 or 2 and k, batch >= 1, got "
          f"{a.runs!r}", file=sys.stderr)
    return 2
  where = this_device()
  out = dated_result(a.out_dir, where, "burda-cost")
  key = lambda r: (r.get("layers", 1), r["k"], r["batch"])  # noqa: E731
  env = provenance.environment()
  result = {"kind": "burda-cost", "date": datetime.date.today().isoformat(), **where, **env,
            "commands": ["benchmarks/burda_cost.py " + " ".join(sys.argv[1:] if argv is None else argv)],
            "note": a.note, "measures": "training images/s of the real loop (timing.json, compile excluded) over "
            f"steps_timed steps; paper_schedule_hours = {EPOCHS} epochs of {TRAIN_IMAGES} images at that rate",
            "records": []}
  for layers, k, batch in runs:
    result["records"].append({**measure(layers, k, batch, a.steps), "malloc": env.get("malloc")})
    record = result["records"][-1]
    print(f"burda {layers} layer(s) k={k:2d} batch {batch:3d}: {record['images_per_sec']:9.0f} images/s; the "
          f"paper's {EPOCHS} epochs: {record['paper_schedule_hours']:.1f} h")
    write_merged(out, result, key, sort=key)  # after each row: a stopped run keeps what it measured
  print(f"burda_cost: -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
