"""The likelihood block: the negative ELBO and an importance-weighted NLL bound, in nats per image, of a fixed
binarization of the test split, from the family's `likelihood_bounds`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data
from genjax.eval.block import Scored, Settings

NAME = "likelihood"
BINARIZATION = ("test images binarized once: x_bin = 1[u < x] with u ~ U[0, 1) from fold_in(PRNGKey(seed), 1000003) "
                "and x = uint8/255 (one draw of dynamic binarization). The VAEs train on grey levels as Bernoulli "
                "targets, whose log-likelihood is the expectation of the dynamically binarized one")


def applies(family) -> bool:
  return NAME in family.blocks


def score(run, settings: Settings) -> Scored:
  k, examples = settings.nll_k, settings.nll_examples
  return Scored(likelihood_metrics(run, settings.seed, k, examples),
                {"binarization": BINARIZATION, "nll": f"-log (1/k) sum w_i, k={k} importance samples from q(z|x) per "
                 "image", "neg_elbo": "-(1/k) sum log w_i from the same k samples",
                 "likelihood_examples": min(examples, len(data.load(run.config.data.name, "test").images))})


def binarize(images_u8: np.ndarray, seed: int) -> np.ndarray:
  """The fixed binarization of BINARIZATION, float32 {0, 1}."""
  u = jax.random.uniform(jax.random.fold_in(jax.random.PRNGKey(seed), 1000003), images_u8.shape)
  return np.asarray(u < images_u8.astype(np.float32) / 255.0, np.float32)


def likelihood_metrics(run, seed: int, k: int, examples: int, batch: int = 50, chunk: int = 250) -> dict:
  """neg_elbo and nll (nats per image) from the same k importance samples of each binarized test image."""
  test = data.load(run.config.data.name, "test")
  examples = min(examples, len(test.images))
  x_all, y_all = binarize(test.images[:examples], seed), test.labels[:examples]

  @jax.jit
  def one(state, x, y, rng):
    return run.family.likelihood_bounds(state, x, y, rng, k, chunk=chunk)

  bound, elbo = data.batched(lambda x, y, key: one(run.state, jnp.asarray(x), jnp.asarray(y), key), x_all, y_all,
                             batch_size=batch, key=jax.random.fold_in(jax.random.PRNGKey(seed), 7),
                             desc=f"likelihood bounds, k={k}")
  bound, elbo = bound.astype(np.float64), elbo.astype(np.float64)
  return {"neg_elbo": float(-elbo.mean()), "nll": float(-bound.mean()),
          "neg_elbo_se": float(elbo.std(ddof=1) / np.sqrt(len(elbo))) if len(elbo) > 1 else 0.0}
