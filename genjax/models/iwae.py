"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2015): the MLP VAE of `vae_dense`, trained on
the k-sample bound L_k(x) = E[log (1/k) sum_i w_i] of `genjax.models.likelihood` instead of the ELBO."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.errors import UserError
from genjax.models import nets, vae_dense
from genjax.models.likelihood import bounds, iwae_bound
from genjax.state import pmean, step_key

EVAL_K = 50  # samples of the importance-weighted bound that eval_step reports


def validate(config) -> None:
  vae_dense.validate(config)
  if config.step.k < 1:
    raise UserError(f"step.k must be >= 1 (importance samples per example), got {config.step.k}")


def bound_step(state, batch, rng, bounds_fn, k: int, binarize: bool, axis_name):
  """One Adam step on -mean L_k (nats per image) with the reparameterized gradient of Burda et al., for any model
  whose `bounds_fn(state, x, rng, k, params=...)` gives (L_k, ELBO) per example from the same k draws
  (`likelihood.bounds`, `iwae2.bounds`); `neg_elbo` is the k-sample average of -log w_i, an unbiased estimate of the
  negative ELBO. `binarize`: on the batch's dynamic binarization, pixels drawn anew as Bernoulli(grey level) at
  every step, as the paper's."""
  rng = step_key(rng, state.step, axis_name)
  x = vae_dense.dynamic_binarization(rng, batch["image"]) if binarize else batch["image"]

  def loss_fn(params):
    bound, elbo = bounds_fn(state, x, rng, k, params=params)
    return -jnp.mean(bound), {"loss": -bound, "neg_elbo": -elbo}

  (_, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean(nets.mean_over_batch(per), axis_name)


def train_step(state, batch, rng, *, k: int = 5, binarize: bool = False, axis_name=None):
  """One Adam step on -mean L_k of `vae_dense`'s network (`bound_step` with `likelihood.bounds`)."""
  return bound_step(state, batch, rng, bounds, k, binarize, axis_name)


def eval_step(state, batch, rng):
  """Per-example `neg_iwae` = -L_50 (one draw), and the single-sample `neg_elbo`, `recon`, `kl`; nats, each [B]."""
  k_elbo, k_iwae = jax.random.split(rng)
  per = vae_dense.eval_per_example(state, batch["image"], k_elbo)
  per["neg_iwae"] = -iwae_bound(state, batch["image"], k_iwae, EVAL_K)
  return per


FAMILY = vae_dense.FAMILY._replace(name="iwae", validate=validate, train_step=train_step, eval_step=eval_step)
