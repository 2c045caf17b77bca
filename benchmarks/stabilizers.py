"""GAN stabilizers side by side: the default `gan` run with each option alone and in combination, scored by make eval.

    .venv/bin/python benchmarks/stabilizers.py                        # every variant below, the default steps
    .venv/bin/python benchmarks/stabilizers.py --variants ema,sn_ema --steps 1000

Each variant is the DCGAN config (genjax/configs/gan.py) as it was before this comparison changed its default (BASE:
learning rate 2e-4, no generator average) with a few keys set (VARIANTS), trained by the real loop into
WORKDIR/<variant> and scored by `make eval`'s code on `--num_samples` samples: classifier FID,
precision, recall, coverage and class-KL. A variant that keeps a generator average is scored twice from the same
run, on the average (eval.json) and on the trained generator itself (--raw_generator, eval-raw.json): the average
does not change training, so the two differ only by it. A variant whose run and evaluations exist is not trained
again (the script resumes where it stopped). Results: benchmarks/results/<device>-<date>-gan-stabilizers.json; a
later run of the same day adds its variants to that file (a variant measured again replaces its record).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite import dated_result, during_training, scored, this_device, write_merged  # noqa: E402 -- benchmarks/suite.py

from genjax import config as cfg  # noqa: E402
from genjax import train  # noqa: E402
from genjax.errors import UserError  # noqa: E402
from genjax.eval import provenance  # noqa: E402

# Every variant starts from this DCGAN, the default of genjax/configs/gan.py until 2026-12-06 (the comparisons that
# chose the new defaults: learning rate 2e-3 with the shorter average, then Adam's b2 0.9, then D's third layer with
# the minibatch standard deviation, batch 64 and D's fourth layer), so that results of different days compare the
# same thing.
BASE = {"optim.lr": 2e-4, "optim.b2": 0.999, "step.loss": "non_saturating", "step.ema_decay": 0.0, "step.ema_start": 0,
        "train.steps": 3000, "train.batch_size": 128, "model.disc_features": (32, 64), "model.spectral_norm": False,
        "model.minibatch_std": False}
EMA = {"step.ema_decay": 0.998, "step.ema_start": 500}  # a window of about 500 of the 3000 steps, from step 500
EMA_SHORT = {"step.ema_decay": 0.99, "step.ema_start": 1000}  # a window of about 100 steps
NOW = {"optim.lr": 2e-3, "optim.b2": 0.9, **EMA_SHORT}  # gan.py's optimizer (and the average it had) on 2026-12-06
VARIANTS = {  # name -> the keys set on the default config, and what it tests
    "default": ({}, "the default DCGAN"),
    "ema": (EMA, "a moving average of the generator"),
    "sn_ema": ({"model.spectral_norm": True, **EMA}, "spectral norm in D, with the average"),
    "hinge_ema": ({"step.loss": "hinge", **EMA}, "hinge loss, with the average"),
    "ttur_ema": ({"optim.lr_g": 1e-4, "optim.lr_d": 4e-4, **EMA}, "TTUR: lr_g 1e-4, lr_d 4e-4, with the average"),
    "sn_hinge_ema": ({"model.spectral_norm": True, "step.loss": "hinge", **EMA}, "spectral norm and hinge loss"),
    "batch64_ema": ({"train.batch_size": 64, **EMA}, "batch 64 (as many steps), with the average"),
    "hinge_ema99": ({"step.loss": "hinge", **EMA_SHORT}, "hinge loss, with a shorter average"),
    "hinge_r1_ema99": ({"step.loss": "hinge", "step.r1": 1.0, **EMA_SHORT}, "hinge loss and R1 (gamma 1)"),
    # D's width: the default D has 32 and 64 channels.
    "d2x": ({"model.disc_features": (64, 128)}, "D with twice the channels (64, 128)"),
    "d4x": ({"model.disc_features": (128, 256)}, "D with four times the channels (128, 256)"),
    "d2x_hinge_ema99": ({"model.disc_features": (64, 128), "step.loss": "hinge", **EMA_SHORT},
                        "D with twice the channels, hinge loss, the shorter average"),
    # The learning rate of both players (DCGAN's 2e-4 by default), Adam's b1 0.5 kept.
    "lr5e-4_ema99": ({"optim.lr": 5e-4, **EMA_SHORT}, "learning rate 5e-4, the shorter average"),
    "lr1e-3_ema99": ({"optim.lr": 1e-3, **EMA_SHORT}, "learning rate 1e-3, the shorter average"),
    "lr2e-3_ema99": ({"optim.lr": 2e-3, **EMA_SHORT}, "learning rate 2e-3, the shorter average"),
    "lr4e-3_ema99": ({"optim.lr": 4e-3, **EMA_SHORT}, "learning rate 4e-3, the shorter average"),
    "lr2e-3_hinge_ema99": ({"optim.lr": 2e-3, "step.loss": "hinge", **EMA_SHORT},
                           "learning rate 2e-3, hinge loss, the shorter average"),
    # The same wall time (about 5 minutes here) spent on more steps of a cheaper generator: G's channels halved
    # (64, 32) runs about 1.75x the images/s of (128, 64) on this CPU.
    "g64_lr2e-3_ema99": ({"model.gen_features": (64, 32), "optim.lr": 2e-3, **EMA_SHORT, "train.steps": 5300},
                         "G with half the channels (64, 32), 5300 steps, learning rate 2e-3, the shorter average"),
    # Around the default (learning rate 2e-3, the shorter average): Adam's b2, and D faster than G (TTUR).
    "lr2e-3_b2_99_ema99": ({"optim.lr": 2e-3, "optim.b2": 0.99, **EMA_SHORT},
                           "learning rate 2e-3 with Adam's b2 0.99 (0.999 by default), the shorter average"),
    "lr2e-3_b2_9_ema99": ({"optim.lr": 2e-3, "optim.b2": 0.9, **EMA_SHORT},
                          "learning rate 2e-3 with Adam's b2 0.9 (as WGAN-GP), the shorter average"),
    "lr2e-3_d4e-3_ema99": ({"optim.lr": 2e-3, "optim.lr_d": 4e-3, **EMA_SHORT},
                           "TTUR around the default: lr_g 2e-3, lr_d 4e-3, the shorter average"),
    "lr2e-3_d3_ema99": ({"optim.lr": 2e-3, "model.disc_features": (32, 64, 128), **EMA_SHORT},
                        "a third conv layer in D (32, 64, 128 channels), learning rate 2e-3, the shorter average"),
    "lr2e-3_b2_9_d3_ema99": ({"optim.lr": 2e-3, "optim.b2": 0.9, "model.disc_features": (32, 64, 128), **EMA_SHORT},
                             "Adam's b2 0.9 and a third conv layer in D, learning rate 2e-3, the shorter average"),
    # Around the current default (lr 2e-3, b2 0.9, the shorter average) with D's third layer, which raised precision
    # but left the classes uneven: a remedy for the uneven classes beside it.
    "d3_mbstd": ({**NOW, "model.disc_features": (32, 64, 128), "model.minibatch_std": True},
                 "the default with D's third layer and the minibatch standard deviation in D"),
    "mbstd": ({**NOW, "model.minibatch_std": True}, "the default with the minibatch standard deviation in D"),
    "d3x64_mbstd": ({**NOW, "model.disc_features": (32, 64, 64), "model.minibatch_std": True},
                    "the default with a cheaper third layer in D (32, 64, 64) and the minibatch standard deviation"),
    "d3_mbstd_seed1": ({**NOW, "model.disc_features": (32, 64, 128), "model.minibatch_std": True, "train.seed": 1},
                       "d3_mbstd with another seed (initialization, batches and noise)"),
    "d3_fmmd": ({**NOW, "model.disc_features": (32, 64, 128), "step.feature_mmd": True},
                "the default with D's third layer, G trained on the MMD^2 of D's features (feature_mmd)"),
    # The same wall time as d3_mbstd (a default of 2026-12-06) spent on twice the steps of half the batch; the
    # generator average spans as many images (200 updates of 64 from step 2000).
    "d3_mbstd_b64": ({**NOW, "model.disc_features": (32, 64, 128), "model.minibatch_std": True,
                      "train.batch_size": 64, "train.steps": 6000, "step.ema_decay": 0.995, "step.ema_start": 2000},
                     "d3_mbstd at batch 64 for 6000 steps, the average over 200 updates from step 2000"),
    # A fourth stride-2 layer in D (4x4 -> 2x2, 256 channels) on d3_mbstd_b64, for precision (the default since).
    "d4_mbstd_b64": ({**NOW, "model.disc_features": (32, 64, 128, 256), "model.minibatch_std": True,
                      "train.batch_size": 64, "train.steps": 6000, "step.ema_decay": 0.995, "step.ema_start": 2000},
                     "d3_mbstd_b64 with a fourth layer in D (32, 64, 128, 256 channels)"),
    # The learning rate decayed to 0 over the run by a cosine (optim.schedule), from the peak named.
    "cos_lr2e-3_ema99": ({"optim.lr": 2e-3, "optim.schedule": "cosine", "optim.decay_steps": 3000, **EMA_SHORT},
                         "learning rate 2e-3 decayed to 0 by a cosine over the 3000 steps, the shorter average"),
    "cos_lr4e-3_ema99": ({"optim.lr": 4e-3, "optim.schedule": "cosine", "optim.decay_steps": 3000, **EMA_SHORT},
                         "learning rate 4e-3 decayed to 0 by a cosine over the 3000 steps, the shorter average"),
    "g64_b64_lr2e-3_ema99": ({"model.gen_features": (64, 32), "optim.lr": 2e-3, "train.batch_size": 64,
                              "step.ema_decay": 0.99, "step.ema_start": 2000, "train.steps": 10600},
                             "G with half the channels, batch 64 and 10600 steps, learning rate 2e-3, the shorter "
                             "average from step 2000"),
}
SCORES = ("fid", "precision", "recall", "coverage", "class_kl", "classes_covered")


def variant_config(name: str, steps: int, eval_every: int = 0):
  c = cfg.model_config("gan")
  cfg.assign(c, BASE)
  cfg.assign(c, VARIANTS[name][0])
  if steps:
    c.train.steps = steps
  if eval_every:
    c.train.eval_every = eval_every
  cfg.check(c)
  return c


def measure(name: str, workdir: pathlib.Path, steps: int, num_samples: int, eval_every: int = 0,
            log=print) -> dict:
  c = variant_config(name, steps, eval_every)
  run_dir = workdir / name
  ema = c.step.get("ema_decay", 0.0) > 0
  timing = run_dir / "timing.json"
  if not (timing.exists() and json.loads(timing.read_text()).get("steps") == c.train.steps):
    t0 = time.perf_counter()
    train.train(c, run_dir, quiet=True)
    log(f"{name}: trained {c.train.steps} steps in {time.perf_counter() - t0:.0f} s")
  record = {"variant": name, "what": VARIANTS[name][1], "set": VARIANTS[name][0], "steps": c.train.steps,
            "batch_size": c.train.batch_size, "train_s": json.loads(timing.read_text())["train_s"]}
  curve = during_training(run_dir)
  if curve:
    record["eval_every"] = curve
    record["eval_every_steps"] = c.train.eval_every
  for raw in ([False, True] if ema else [False]):
    result = scored(run_dir, c.train.steps, {"num_samples": num_samples}, raw_generator=raw)
    scores = {k: result[k] for k in SCORES if k in result}
    record["raw" if raw else "scores"] = scores
    log(f"{name}{' (raw generator)' if raw else ''}: " + ", ".join(f"{k} {v:.3g}" for k, v in scores.items()))
  return record


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
  p.add_argument("--steps", type=int, default=0, help="training steps; default the config's (3000)")
  p.add_argument("--eval_every", type=int, default=0, help="train.eval_every: FID of 2000 samples in the run")
  p.add_argument("--num_samples", type=int, default=10000, help="samples scored (make eval's default)")
  p.add_argument("--workdir", default="runs/stabilizers")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  p.add_argument("--tag", default="gan-stabilizers")
  p.add_argument("--note", default="", help="a sentence for the results, e.g. what else shared the machine")
  a = p.parse_args(argv)
  names = a.variants.split(",")
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    print(f"stabilizers: error: unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}", file=sys.stderr)
    return 2
  where = this_device()
  out = dated_result(a.out_dir, where, a.tag)
  command = "benchmarks/stabilizers.py " + " ".join(argv or sys.argv[1:])
  result = {"kind": "gan-stabilizers", "date": datetime.date.today().isoformat(), **where, "devices": 1,
            **provenance.environment(), "commands": [command], "num_samples": a.num_samples, "complete": False,
            "note": a.note, "records": []}
  # Written after each variant (a stopped run keeps what it measured), merged with the records other runs of today
  # wrote meanwhile; a file of another --num_samples is replaced.
  try:
    for name in names:
      result["records"].append(measure(name, pathlib.Path(a.workdir), a.steps, a.num_samples, a.eval_every))
      written = write_merged(out, result, "variant", same=("num_samples",))
  except UserError as e:
    print(f"stabilizers: error: {e}", file=sys.stderr)
    return 2
  except train.Interrupted as e:  # SIGTERM or SIGINT while training: its checkpoint is saved, this run resumes it
    print(f"stabilizers: {e}; the variants measured before it are in {out}", file=sys.stderr)
    return 128 + e.signum
  result["complete"] = True
  written = write_merged(out, result, "variant", same=("num_samples",))
  print(f"stabilizers: {len(written['records'])} variants -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
