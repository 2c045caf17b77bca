"""The experiment runner: an experiment trains the models it needs with `genjax.train.train`, then measures and draws
what they teach.

The course's experiments are files of the source checkout, not of the package: `experiments/*.py` (autoencoders,
gans, latent), whose `@experiment` functions take a `Lab` and return a results dict. `available()` imports the files
of `experiments/` in the working directory (`make experiment` runs from the checkout's root) or of another folder.
`run(name, quick)` writes `runs/experiments/<name>/results.json` and PNG figures (QUICK runs go to
`runs/experiments/<name>/quick/`). Models are trained into subfolders of that directory, so running an experiment
again resumes or reuses them instead of training from scratch."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import sys
import time
import types
from collections.abc import Callable

import jax
import numpy as np

from genjax import config as cfg
from genjax import data
from genjax.errors import UserError
from genjax.eval import provenance

ROOT = pathlib.Path("runs/experiments")  # where results go, relative to the working directory
SOURCE = pathlib.Path("experiments")  # where the experiment files are, relative to the working directory


@dataclasses.dataclass
class Lab:
  """What an experiment function gets: where to write, whether to run small, and a model trainer."""
  out: pathlib.Path
  quick: bool
  quiet: bool = True
  max_steps: int | None = None  # caps every model's training (tests)
  trained: dict = dataclasses.field(default_factory=dict)

  def fit(self, model: str, tag: str | None = None, *, steps: int, quick_steps: int, config: str | None = None,
          **overrides):
    """Trains `genjax/configs/<config or model>.py` with `overrides` ({"step.loss": "mse"}) into `out/<tag>/`."""
    from genjax import train
    c = cfg.model_config(config or model)
    c.model.name = model
    cfg.assign(c, overrides)
    c.train.steps = min(quick_steps if self.quick else steps, self.max_steps or steps)
    if c.optim.schedule == "cosine":  # the decay spans the run, however long it is
      c.optim.decay_steps = c.train.steps
    t = c.train
    for key in ("log_every", "sample_every", "checkpoint_every"):
      t[key] = min(t[key], t.steps)
    t.log_every = next(v for v in range(t.log_every, 0, -1) if t.steps % v == 0)
    tag = tag or model
    t0 = time.perf_counter()
    result = train.train(c, self.out / tag, quiet=self.quiet)
    self.trained[tag] = {"model": model, "steps": int(result.steps), "train_s": round(time.perf_counter() - t0, 1),
                         "images_per_sec": None if np.isnan(result.images_per_sec) else
                         round(result.images_per_sec, 1)}
    return result.state

  def figure(self, name: str) -> pathlib.Path:
    return self.out / f"{name}.png"


def experiment(fn: Callable[[Lab], dict]):
  """Marks `fn` as the experiment of its name in the file that defines it."""
  fn.__genjax_experiment__ = True
  return fn


_MODULES: dict[pathlib.Path, types.ModuleType] = {}


def load(path: str | pathlib.Path) -> types.ModuleType:
  """Imports an experiment file, once per process, and returns the module."""
  path = pathlib.Path(path).resolve()
  if path not in _MODULES:
    name = f"genjax_experiments_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
      spec.loader.exec_module(module)
    except BaseException:
      del sys.modules[name]
      raise
    _MODULES[path] = module
  return _MODULES[path]


def available(source: str | pathlib.Path | None = None) -> dict[str, Callable[[Lab], dict]]:
  """The `@experiment` functions of the .py files in `source` (default `experiments/` of the working directory)."""
  source = pathlib.Path(source or SOURCE)
  if not source.is_dir():
    raise UserError(f"no experiments folder at {source.resolve()}: the experiments are files of the genjax source "
                    f"checkout; run from its root (make experiment NAME=<name>)")
  found = {}
  for path in sorted(source.glob("*.py")):
    if path.name.startswith("_"):
      continue
    module = load(path)
    for fn in vars(module).values():
      if getattr(fn, "__genjax_experiment__", False) and fn.__module__ == module.__name__:
        if fn.__name__ in found:
          raise UserError(f"experiment '{fn.__name__}' is defined twice in {source}")
        found[fn.__name__] = fn
  return found


def run(name: str, quick: bool = False, quiet: bool = True, root: pathlib.Path | None = None,
        max_steps: int | None = None, source: str | pathlib.Path | None = None) -> dict:
  """Runs experiment `name` of `source` (default `experiments/`) and writes its results.json; returns the results."""
  experiments = available(source)
  if name not in experiments:
    raise UserError(f"unknown experiment '{name}'; available: {', '.join(sorted(experiments))}")
  out = (root or ROOT) / name / ("quick" if quick else "")
  out.mkdir(parents=True, exist_ok=True)
  lab = Lab(out, quick, quiet, max_steps)
  t0 = time.perf_counter()
  results = experiments[name](lab)
  results = {"experiment": name, **results, "models": lab.trained,
             "wall_s": round(time.perf_counter() - t0, 1),
             "protocol": {"quick": quick, **provenance.environment()}}
  provenance.write_json(out / "results.json", results)
  return results


def test_images(dataset: str = "mnist", n: int = 10000) -> np.ndarray:
  """Float test images [n, H, W, C] in [0, 1]."""
  return data.load(dataset, "test").images[:n].astype(np.float32) / 255.0


def batched(fn, *arrays, batch_size: int = 1000):
  """`fn`, jitted, applied to arrays in chunks along axis 0 and its (tree of) outputs concatenated (`data.batched`)."""
  return data.batched(jax.jit(fn), *arrays, batch_size=batch_size)


def pooled_psnr(x_hat, x) -> float:
  """PSNR in dB of the squared error pooled over every pixel of a set of images in [0, 1]: -10 log10(mean over the
  set). Not the mean of per-image PSNRs, which the models' eval_step and make eval report as `psnr`."""
  mse = float(np.mean((np.asarray(x_hat) - np.asarray(x)) ** 2))
  return float(-10.0 * np.log10(max(mse, 1e-10)))


def auroc(negatives, positives) -> float:
  """P(score of a positive > score of a negative), ties counting 1/2: the Mann-Whitney U statistic over n_neg n_pos."""
  from scipy.stats import rankdata
  neg, pos = np.asarray(negatives, np.float64), np.asarray(positives, np.float64)
  ranks = rankdata(np.concatenate([neg, pos]))  # average ranks for ties
  u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2
  return float(u / (len(neg) * len(pos)))


def plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as pyplot
  return pyplot
