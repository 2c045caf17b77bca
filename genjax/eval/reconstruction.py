"""The reconstruction block: means over the test split of the family's per-example eval_step metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.eval.block import Scored, Settings
from genjax.models.family import bind

NAME = "reconstruction"
KEEP = ("mse", "bce", "psnr", "denoise_psnr", "denoise_mse", "noisy_psnr")  # the eval_step metrics reported


def applies(family) -> bool:
  return NAME in family.blocks


def score(run, settings: Settings) -> Scored:
  return Scored(reconstruction_metrics(run, settings.seed),
                {"reconstruction": "test split in [0, 1] (uint8/255); mse: mean over pixels; bce: summed over pixels "
                                   "(nats per image); psnr: per image, then averaged"})


def reconstruction_metrics(run, seed: int, batch: int = 500) -> dict:
  """Means over the test split of the family's per-example eval_step metrics (mse, bce, psnr; a DAE's denoising)."""
  test = data.load(run.config.data.name, "test")
  step = jax.jit(bind(run.family.eval_step, run.config.step))

  def per_example(x, y, key):
    return step(run.state, {"image": jnp.asarray(x, jnp.float32) / 255.0, "label": jnp.asarray(y)}, key)

  sums: dict[str, float] = {}
  for per in data.batches(per_example, test.images, test.labels, batch_size=batch,
                          key=jax.random.fold_in(jax.random.PRNGKey(seed), 11), desc="reconstructions"):
    for name, v in per.items():  # summed batch by batch in float64
      sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(v, np.float64)))
  return {name: total / len(test.images) for name, total in sums.items() if name in KEEP}
