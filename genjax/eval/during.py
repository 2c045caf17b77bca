"""A cheap score while training (`train.eval_every`), and the best checkpoint by it.

Every `train.eval_every` steps the loop scores the state in its own process, one number, lower is better:

- generators (GANs, GMMNs): classifier FID of SAMPLES samples (fixed seed) against the test split's first
  REFERENCE images, in the feature space of `make eval`'s classifier (trained first if there is none);
- VAEs: the test negative ELBO, in nats, of the first ELBO_EXAMPLES binarized test images, one draw of z each;
- autoencoders: the test MSE per pixel over the test split.

The score goes to metrics.jsonl and TensorBoard as `eval_<metric>`. The checkpoint of the best score so far is
kept in `checkpoints-best/` beside the newest ones, with `best.json` naming its step and score; `train.max_to_keep`
never removes it, and a resumed run keeps the best it had. `make eval ARGS=--best` scores it.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from genjax import checkpoint, classifier, metrics
from genjax.eval import generator, likelihood, provenance, reconstruction, restore

SAMPLES = 2000
REFERENCE = 10000
ELBO_EXAMPLES = 1000
BEST_DIR = "checkpoints-best"
BEST_FILE = "best.json"


def scorer(family, config, image_shape, workdir):
  """(metric name, score(state, step) -> float) of the family's kind, for states of the family in `config`."""
  dataset = config.data.name

  def run(state, step):
    return restore.Run(pathlib.Path(workdir), config, family, state, step, tuple(image_shape))

  if family.kind == "vae":
    def neg_elbo(state, step):
      return likelihood.likelihood_metrics(run(state, step), seed=0, k=1, examples=ELBO_EXAMPLES)["neg_elbo"]
    return "neg_elbo", neg_elbo
  if family.kind == "generator":
    net, _ = generator.feature_network(dataset)

    def fid(state, step):
      real, _ = generator.reference_features(dataset, REFERENCE)
      fake = classifier.features(net, generator.draw_samples(run(state, step), SAMPLES, seed=0))
      return float(metrics.fid(real, fake))
    return "fid", fid

  def mse(state, step):
    return reconstruction.reconstruction_metrics(run(state, step), seed=0)["mse"]
  return "mse", mse


def read_best(workdir) -> dict | None:
  """best.json of a run ({"step", "metric", "value"}), or None when it has none."""
  path = pathlib.Path(workdir) / BEST_FILE
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except ValueError:
    return None  # a best.json cut short is rewritten at the next better score


class Best:
  """The best-scoring checkpoint of a run: `offer` saves the state when its score beats the best so far. The
  directory keeps the two newest bests (max_to_keep=2), so that best.json, written once a save is complete, always
  names a checkpoint that exists, whenever the process stops."""

  def __init__(self, workdir, metric: str, write: bool):
    self.workdir, self.metric, self.write = pathlib.Path(workdir), metric, write
    self.best = read_best(self.workdir)
    if self.best is not None and self.best.get("metric") != metric:
      self.best = None
    self.ckpts = checkpoint.Checkpoints(self.workdir / BEST_DIR, max_to_keep=2, owner=write)

  def offer(self, step: int, value: float, state) -> bool:
    """Saves `state` as the best when `value` is below the best so far (a NaN never is); True when it was."""
    if not np.isfinite(value) or self.best is not None and value >= self.best["value"]:
      return False
    self.ckpts.save(step, state)
    self.ckpts.wait()
    self.best = {"step": int(step), "metric": self.metric, "value": float(value)}
    if self.write:
      provenance.write_json(self.workdir / BEST_FILE, self.best)
    return True
