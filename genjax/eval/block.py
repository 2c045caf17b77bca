"""What an evaluation block is, and what it is asked for.

A block is a module of genjax.eval with `NAME` (one of genjax.models.family.BLOCKS), `applies(family) -> bool`
(whether the family's `blocks` name it) and `score(run, settings) -> Scored`: its metrics, its part of the protocol,
and the samples it drew when they are worth saving (the generator's).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from genjax.errors import UserError

NUM_SAMPLES = 10000
NLL_K = 5000
NLL_EXAMPLES = 10000


@dataclasses.dataclass(frozen=True)
class Settings:
  """Generators are scored on `num_samples` samples against the first `num_reference` test images; likelihoods on the
  first `nll_examples` test images with `nll_k` importance samples each; `inception_weights` adds Inception FID;
  `raw_generator` scores a GAN's trained generator rather than its moving average; `truncation` (not None) replaces
  the run's `model.truncation` of a GAN's sampling latents (0: none)."""
  num_samples: int = NUM_SAMPLES
  seed: int = 0
  nll_k: int = NLL_K
  nll_examples: int = NLL_EXAMPLES
  num_reference: int = NUM_SAMPLES
  inception_weights: str | None = None
  raw_generator: bool = False
  truncation: float | None = None

  def check(self) -> None:
    """UserError for a count that is not a positive integer, or fewer than 2 samples."""
    for name in ("num_samples", "nll_k", "nll_examples", "num_reference"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a positive integer, got {value!r}")
    if self.num_samples < 2:
      raise UserError("num_samples must be at least 2")
    if self.truncation is not None and self.truncation < 0:
      raise UserError(f"truncation must be >= 0 (0: none), got {self.truncation}")

  def recorded(self) -> dict:
    """The eval.json `settings` entry: the Inception weights named by hash, and absent without them (so that older
    eval.json stay current for the leaderboard)."""
    from genjax import inception
    out = {"num_samples": self.num_samples, "seed": self.seed, "nll_k": self.nll_k, "nll_examples": self.nll_examples,
           "num_reference": self.num_reference}
    if self.raw_generator:
      out["raw_generator"] = True
    if self.truncation is not None:
      out["truncation"] = self.truncation
    if self.inception_weights:
      out["inception_sha256"] = inception.load(str(self.inception_weights))[1]["weights_sha256"]
    return out


class Scored(NamedTuple):
  """A block's result: metrics for eval.json, its entries of the protocol, and the uint8 samples it drew (or None)."""
  metrics: dict
  protocol: dict
  samples: np.ndarray | None = None
