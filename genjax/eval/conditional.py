"""The conditional block: how often the evaluation classifier gives a sample of `sample_class` the label it was drawn
for."""

from __future__ import annotations

import jax
import numpy as np

from genjax import classifier, data
from genjax.eval import generator
from genjax.eval.block import Scored, Settings

NAME = "conditional"


def applies(family) -> bool:
  return NAME in family.blocks


def score(run, settings: Settings) -> Scored:
  n = settings.num_samples
  return Scored({"label_accuracy": label_accuracy(run, run.config.data.name, n, settings.seed)},
                {"label_accuracy": f"{n} samples drawn by sample_class for labels 0..C-1 in turn; the fraction the "
                                   "feature network classifies as the label they were drawn for"})


def label_accuracy(run, dataset: str, n: int, seed: int, batch: int = 1000) -> float:
  """A conditional generator's accuracy: the fraction of n samples, drawn by `sample_class` for the labels 0, 1,
  ..., num_classes - 1 in turn, that the evaluation classifier assigns to the label they were drawn for."""
  labels = np.arange(n) % int(run.config.model.num_classes)
  sample = jax.jit(run.family.sample_class)
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # draws of their own, apart from draw_samples'
  images = generator.to_uint8(data.batched(lambda y, k: sample(run.state, k, y), labels, batch_size=batch, key=key,
                                           desc="sampling by label"))
  state, _ = generator.feature_network(dataset)
  return float(np.mean(np.argmax(classifier.probabilities(state, images), axis=-1) == labels))
