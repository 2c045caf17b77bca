"""What each run of Burda et al.'s (2015) Table 1 costs here: measured training images/s, and the wall time of the
paper's 3280-epoch schedule at that rate.

    .venv/bin/python benchmarks/burda_cost.py            # k = 1, 5, 50 at batch 20; k = 1 at batches 100 and 500
    .venv/bin/python benchmarks/burda_cost.py --steps 1000

Each row trains genjax/configs/burda.py (1 stochastic layer) with the real loop for `--steps` steps in a temporary
directory and reads the run's own images/s (timing.json: compile excluded). The 2-stochastic-layer model is not in
genjax yet. Results: benchmarks/results/<device>-<date>-burda-cost.json, with the exact command of each full run.
"""

from __future__ import annotations

import argparse
import datetime
import pathlib
import sys
import tempfile

import jax

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite import device_slug  # noqa: E402 -- benchmarks/suite.py

from genjax import config as cfg  # noqa: E402
from genjax import train  # noqa: E402
from genjax.eval import provenance  # noqa: E402

RUNS = [(1, 20), (5, 20), (50, 20), (1, 100), (1, 500)]  # (k, batch)
PAPER = {1: 86.76, 5: 85.54, 50: 84.78}  # Table 1, 1 stochastic layer, test NLL in nats
EPOCHS = 3280
TRAIN_IMAGES = 60000


def measure(k: int, batch: int, steps: int) -> dict:
  c = cfg.model_config("burda")
  c.step.k, c.train.batch_size, c.optim.epoch_steps = k, batch, TRAIN_IMAGES // batch
  c.train.steps = steps
  c.train.log_every = c.train.sample_every = c.train.checkpoint_every = steps
  with tempfile.TemporaryDirectory() as tmp:
    r = train.train(c, pathlib.Path(tmp) / "run", quiet=True)
  full_steps = EPOCHS * TRAIN_IMAGES // batch
  command = (f"make train MODEL=iwae WORKDIR=runs/burda_k{k}_b{batch} ARGS=\"--config=burda --config.step.k={k}"
             + (f" --config.train.batch_size={batch} --config.optim.epoch_steps={TRAIN_IMAGES // batch}"
                f" --config.train.steps={full_steps}" if batch != 20 else "") + "\"")
  return {"k": k, "batch": batch, "steps_timed": steps, "images_per_sec": round(r.images_per_sec, 1),
          "paper_nll": PAPER.get(k) if batch == 20 else None,
          "paper_schedule_hours": round(EPOCHS * TRAIN_IMAGES / r.images_per_sec / 3600, 2), "command": command}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=3000, help="steps timed per row")
  p.add_argument("--note", default="", help="a sentence for the results, e.g. what else shared the machine")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  a = p.parse_args(argv)
  device = jax.devices()[0]
  where = {"platform": jax.default_backend(), "device_kind": device.device_kind, "cpu": provenance.cpu_name()}
  records = []
  for k, batch in RUNS:
    records.append(measure(k, batch, a.steps))
    print(f"burda k={k:2d} batch {batch:3d}: {records[-1]['images_per_sec']:9.0f} images/s; the paper's {EPOCHS} "
          f"epochs: {records[-1]['paper_schedule_hours']:.1f} h")
  out = pathlib.Path(a.out_dir) / f"{device_slug(where)}-{datetime.date.today().isoformat()}-burda-cost.json"
  provenance.write_json(out, {"kind": "burda-cost", "date": datetime.date.today().isoformat(), **where,
                              **provenance.environment(), "note": a.note,
                              "measures": "training images/s of the real loop (timing.json, compile excluded) over "
                              f"{a.steps} steps; paper_schedule_hours = {EPOCHS} epochs of {TRAIN_IMAGES} images "
                              "at that rate", "records": records}, indent=1)
  print(f"burda_cost: -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
