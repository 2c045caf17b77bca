"""Command line: parses flags and overrides, then hands off to `genjax.train`."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

USAGE = """python -m genjax.main train --model NAME [--dataset NAME] [--workdir DIR] [--config FILE] [--quiet]
                                  [--config.SECTION.KEY=VALUE ...]
       python -m genjax.main experiment --name NAME [--quick]
       python -m genjax.main classifier [--dataset NAME]"""


def parse(argv):
  parser = argparse.ArgumentParser(prog="genjax", usage=USAGE, description=__doc__)
  parser.add_argument("command", choices=["train", "experiment", "classifier"])
  parser.add_argument("--model", default="")
  parser.add_argument("--name", default="", help="experiment name")
  parser.add_argument("--quick", action="store_true", help="experiment: a smoke-sized run")
  parser.add_argument("--dataset", default="", help="overrides data.name")
  parser.add_argument("--workdir", default="", help="default: runs/<model>")
  parser.add_argument("--config", default="", help="experiment file; default: experiments/<model>.py")
  parser.add_argument("--quiet", action="store_true", help="no progress bar")
  return parser.parse_known_args(argv)


def run_experiment(args, rest) -> int:
  from genjax import lab
  from genjax.errors import UserError
  if rest:
    raise UserError(f"unrecognized arguments {rest}")
  if not args.name:
    raise UserError("experiment needs NAME: make experiment NAME=<name>")
  results = lab.run(args.name, quick=args.quick, quiet=args.quiet)
  out = lab.ROOT / args.name / ("quick" if args.quick else "")
  print(f"genjax: experiment {args.name} finished in {results['wall_s']:.0f} s; results in {out}/results.json")
  return 0


def run_classifier(args, rest) -> int:
  from genjax import classifier
  from genjax.errors import UserError
  if rest:
    raise UserError(f"unrecognized arguments {rest}")
  dataset = args.dataset or "mnist"
  state = classifier.load(dataset, quiet=args.quiet)
  print(f"genjax: classifier for {dataset}: test accuracy {classifier.accuracy(state, dataset):.4f}; "
        f"checkpoints in {classifier.workdir(dataset)}/")
  return 0


def run(argv) -> int:
  from genjax import config as cfg
  from genjax import models
  args, rest = parse(argv)
  if args.command == "experiment":
    return run_experiment(args, rest)
  if args.command == "classifier":
    return run_classifier(args, rest)
  if not args.model:
    from genjax.errors import UserError
    raise UserError("train needs --model NAME (make train MODEL=<name>)")
  overrides = cfg.parse_overrides(rest)
  models.get(args.model)  # an unknown name fails here, before anything is loaded
  config = cfg.load(args.config or cfg.EXPERIMENTS_DIR / f"{args.model}.py")
  if args.dataset:
    overrides["data.name"] = args.dataset
  cfg.override(config, overrides)
  workdir = pathlib.Path(args.workdir or f"runs/{args.model}")

  from genjax import train
  result = train.train(config, workdir, quiet=args.quiet)
  print(f"genjax: trained {config.model.name} on {config.data.name} to step {result.steps} "
        f"({result.steps - result.start_step} steps this run) in {result.train_s + result.compile_s:.1f} s: "
        f"{result.images_per_sec:.0f} images/s after {result.compile_s:.1f} s compiling; outputs in {workdir}/")
  return 0


def main(argv=None) -> int:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  from genjax.errors import UserError
  try:
    return run(sys.argv[1:] if argv is None else argv)
  except UserError as e:
    print(f"genjax: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("genjax: interrupted before training started; nothing was saved", file=sys.stderr)
    return 130
  except Exception as e:
    from genjax.train import Interrupted
    if isinstance(e, Interrupted):
      print(f"genjax: {e}", file=sys.stderr)
      return 128 + e.signum
    raise


if __name__ == "__main__":
  sys.exit(main())
