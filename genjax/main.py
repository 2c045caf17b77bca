"""Command line: parses flags and overrides, then hands off to `genjax.train`, `genjax.eval` or `genjax.lab`."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import threading

USAGE = """python -m genjax.main train --model NAME [--dataset NAME] [--workdir DIR] [--config FILE|NAME] [--quiet]
                                  [--config.SECTION.KEY=VALUE ...]
       python -m genjax.main experiment --name NAME [--quick]
       python -m genjax.main classifier [--dataset NAME]
       python -m genjax.main eval --workdir DIR [--num_samples N] [--num_reference N] [--seed S] [--nll_k K]
                                [--nll_examples N] [--inception PT_INCEPTION.pth]
       python -m genjax.main eval --samples FILE.npz --dataset NAME [--out FILE.json] [--inception PT_INCEPTION.pth]
       python -m genjax.main leaderboard [--root runs] [--num_samples N] [--nll_k K] [--nll_examples N]
                                       [--inception PT_INCEPTION.pth]"""


BACKGROUND = None  # the training process's held background disk reports (checkpoint.BackgroundDiskReports)


def parse(argv):
  parser = argparse.ArgumentParser(prog="genjax", usage=USAGE, description=__doc__)
  parser.add_argument("command", choices=["train", "experiment", "classifier", "eval", "leaderboard"])
  parser.add_argument("--model", default="")
  parser.add_argument("--name", default="", help="experiment name")
  parser.add_argument("--quick", action="store_true", help="experiment: a smoke-sized run")
  parser.add_argument("--dataset", default="", help="overrides data.name")
  parser.add_argument("--workdir", default="", help="default: runs/<model>")
  parser.add_argument("--config", default="",
                      help="a config file (path/to/file.py) or the name of one in genjax.configs (gmmn_ae); "
                           "default: genjax/configs/<model>.py")
  parser.add_argument("--quiet", action="store_true", help="no progress bar")
  parser.add_argument("--samples", default="", help="eval: an .npz of uint8 images [N, H, W, C] under 'images'")
  parser.add_argument("--out", default="", help="eval --samples: the JSON to write; default FILE.eval.json")
  parser.add_argument("--root", default="runs", help="leaderboard: where to look for runs")
  parser.add_argument("--num_samples", type=int, default=10000, help="eval: generated images scored")
  parser.add_argument("--seed", type=int, default=0, help="eval: seed of samples, binarization and estimators")
  parser.add_argument("--nll_k", type=int, default=5000, help="eval: importance samples per image for the NLL")
  parser.add_argument("--nll_examples", type=int, default=10000, help="eval: test images in neg_elbo and nll")
  parser.add_argument("--best", action="store_true",
                      help="eval: the best checkpoint by train.eval_every's score, not the newest (eval-best.json)")
  parser.add_argument("--raw_generator", action="store_true",
                      help="eval: score a GAN's trained generator, not its moving average (eval-raw.json)")
  parser.add_argument("--truncation", type=float, default=None,
                      help="eval: a GAN's sampling latents truncated to [-T, T] instead of the run's "
                           "model.truncation; 0: none (eval-truncation<T>.json)")
  parser.add_argument("--num_reference", type=int, default=10000,
                      help="eval: test images that generated ones are compared with")
  parser.add_argument("--inception", default=os.environ.get("GENJAX_INCEPTION", ""),
                      help="eval: pytorch-fid's InceptionV3 weights (.pth or .npz) for Inception FID and KID; "
                           "default $GENJAX_INCEPTION")
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


def run_eval(args, rest) -> int:
  from genjax.errors import UserError
  from genjax.eval import leaderboard
  from genjax.eval import run as evaluation
  if rest:
    raise UserError(f"unrecognized arguments {rest}")
  if args.command == "leaderboard":
    leaderboard.leaderboard(args.root, num_samples=args.num_samples, seed=args.seed, nll_k=args.nll_k,
                            nll_examples=args.nll_examples, num_reference=args.num_reference,
                            inception_weights=args.inception or None, quiet=args.quiet)
    print(f"genjax: leaderboard written to {pathlib.Path(args.root) / 'leaderboard.md'}")
    return 0
  if args.samples:
    if not args.dataset:
      raise UserError("eval of a samples file needs the dataset to compare with: make eval SAMPLES=... DATASET=mnist")
    result = evaluation.evaluate_samples(args.samples, args.dataset, args.out or None, seed=args.seed,
                                         num_reference=args.num_reference, inception_weights=args.inception or None)
    inception_fid = f", Inception FID {result['inception_fid']:.2f}" if "inception_fid" in result else ""
    print(f"genjax: {args.samples}: FID {result['fid']:.2f}{inception_fid}, {result['classes_covered']} classes "
          f"covered")
    return 0
  if not args.workdir:
    raise UserError("eval needs a run: make eval WORKDIR=runs/<model>, or SAMPLES=file.npz DATASET=<name>")
  result = evaluation.evaluate_run(args.workdir, num_samples=args.num_samples, seed=args.seed, nll_k=args.nll_k,
                                   nll_examples=args.nll_examples, num_reference=args.num_reference,
                                   inception_weights=args.inception or None, raw_generator=args.raw_generator,
                                   best=args.best, truncation=args.truncation)
  keys = ("fid", "inception_fid", "classes_covered", "neg_elbo", "nll", "mse", "psnr")
  shown = {k: result[k] for k in keys if k in result}
  what = f"a population of {result['population']} " if "population" in result else ""
  print(f"genjax: evaluated {what}{result['model']} at step {result['step']}: "
        + ", ".join(f"{k} {v['mean']:.4g} ± {v['std']:.2g}" if isinstance(v, dict) else f"{k} {v:.4g}"
                    for k, v in shown.items())
        + f"; written to {args.workdir}/{evaluation.result_name(args.raw_generator, args.best, args.truncation)}.json")
  return 0


def run(argv) -> int:
  from genjax import config as cfg
  from genjax import models
  args, rest = parse(argv)
  if args.command == "experiment":
    return run_experiment(args, rest)
  if args.command == "classifier":
    return run_classifier(args, rest)
  if args.command in ("eval", "leaderboard"):
    return run_eval(args, rest)
  if not args.model:
    from genjax.errors import UserError
    raise UserError("train needs --model NAME (make train MODEL=<name>)")
  overrides = cfg.parse_overrides(rest)
  models.get(args.model)  # an unknown name fails here, before anything is loaded
  config = cfg.get(args.config) if args.config else cfg.model_config(args.model)
  if args.dataset:
    overrides["data.name"] = args.dataset
  cfg.override(config, overrides)
  workdir = pathlib.Path(args.workdir or f"runs/{args.model}")

  from genjax import checkpoint, parallel, train
  from genjax.eval import provenance
  parallel.initialize_distributed(config.get("distributed", False))  # before anything touches the backend
  if parallel.is_main():
    print(f"genjax: training {config.model.name} on {config.data.name}, on {provenance.device_name()}", flush=True)
    unused = provenance.unused_accelerator()
    if unused:
      print(f"genjax: warning: {unused}", file=sys.stderr, flush=True)
  global BACKGROUND
  BACKGROUND = checkpoint.BackgroundDiskReports().install()
  result = train.train(config, workdir, quiet=args.quiet)
  if not parallel.is_main():  # in a multi-process run, process 0 speaks for all
    return 0
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
    # The error is said in one line: Orbax's, TensorStore's and TensorBoard's abandoned reads, writes and flushes
    # can still raise in their threads or at exit, which Python would print around it.
    if BACKGROUND is not None:
      BACKGROUND.reported()
    sys.unraisablehook = lambda _: None
    threading.excepthook = lambda _: None
    print(f"genjax: error: {e}", file=sys.stderr, flush=True)
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
  code = main()
  if code == 2:
    # After a user error the process has nothing left to do, and Orbax's and TensorStore's threads can still print
    # teardown tracebacks at exit (some past any Python hook), which would bury the one-line message: leave now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)
