"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov 2015): the MLP VAE of `vae_dense`, trained on

L_k(x) = E[log (1/k) sum_i w_i],  w_i = p(x | z_i) p(z_i) / q(z_i | x),  z_1..z_k ~ q(z | x) independently,

which is the ELBO for k = 1, never decreases with k and tends to log p(x). `iwae_bound` estimates L_k for any
Gaussian-latent, Bernoulli-likelihood VAE state of this repo (`vae`, `vae_dense`, `iwae`, and `cvae` given its
one-hot label as `cond`), in chunks over k so that k = 5000 fits in memory.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import nets, vae_dense
from genjax.state import pmean, step_key

EVAL_K = 50  # samples of the importance-weighted bound that eval_step reports
LOG_2PI = math.log(2.0 * math.pi)

encode, decode, sample, reconstruct, latent_dim = (vae_dense.encode, vae_dense.decode, vae_dense.sample,
                                                   vae_dense.reconstruct, vae_dense.latent_dim)


def _gaussian_log_density(eps, logvar):
  """log N(mean + sigma * eps; mean, sigma^2) = -1/2 sum_j (eps_j^2 + logvar_j + log 2 pi)."""
  return -0.5 * jnp.sum(eps * eps + logvar + LOG_2PI, axis=-1)


def log_weights(state, variables, x, mean, logvar, eps_KxBxD, cond=()):
  """log w = log p(x | z) + log p(z) - log q(z | x) for z = mean + sigma * eps, shape [K, B]."""
  k, b, d = eps_KxBxD.shape
  z = mean + jnp.exp(0.5 * logvar) * eps_KxBxD
  cond_k = [jnp.tile(c, (k, 1)) for c in cond]  # row i * B + j of z belongs to example j
  logits = state.apply_fn(variables, z.reshape(k * b, d), *cond_k, method="decode").reshape(k, *x.shape)
  log_px = -jax.vmap(losses.bernoulli_nll, in_axes=(0, None))(logits, x)
  log_pz = _gaussian_log_density(z, jnp.zeros_like(logvar))
  log_qz = _gaussian_log_density(eps_KxBxD, logvar)
  return log_px + log_pz - log_qz


def noise(rng, indices_K, shape):
  """eps for sample index i is normal(fold_in(rng, i)): the same draws whatever the chunk size."""
  return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(rng, i), shape))(indices_K)


def iwae_bound(state, x, rng, k: int, *, chunk: int = 0, cond=(), params=None):
  """log (1/k) sum_{i<k} w_i per example, [B] in nats (an estimate of L_k; a lower bound on log p(x) on average).

  `chunk` > 0 evaluates the k samples `chunk` at a time (a `lax.scan` carrying a running logsumexp), so memory
  grows with `chunk`, not k; the result equals the unchunked one up to rounding. `cond`: extra inputs of
  `encode`/`decode`, e.g. `(one_hot_labels,)` for `cvae`. `params` replaces the state's (for gradients).
  """
  return bounds(state, x, rng, k, chunk=chunk, cond=cond, params=params)[0]


def bounds(state, x, rng, k: int, *, chunk: int = 0, cond=(), params=None):
  """(L_k, ELBO) per example, each [B] in nats, from the same k draws: log (1/k) sum_i w_i and (1/k) sum_i log w_i.

  By Jensen's inequality the first is >= the second for every example and every draw, so an evaluation that
  reports both from one call can never show a likelihood bound below the ELBO. Arguments as `iwae_bound`.
  """
  k, chunk = int(k), int(chunk)
  if k < 1:
    raise ValueError(f"the importance-weighted bound needs k >= 1, got {k}")
  variables = state.variables if params is None else {**state.variables, "params": params}
  mean, logvar = state.apply_fn(variables, x, *cond, method="encode")
  if chunk <= 0 or chunk >= k:
    lw = log_weights(state, variables, x, mean, logvar, noise(rng, jnp.arange(k), mean.shape), cond)
    return jax.scipy.special.logsumexp(lw, axis=0) - math.log(k), jnp.mean(lw, axis=0)

  def body(carry, start):
    running_lse, running_sum = carry
    idx = start + jnp.arange(chunk)
    lw = log_weights(state, variables, x, mean, logvar, noise(rng, idx, mean.shape), cond)
    valid = idx[:, None] < k  # the last chunk may run past k
    lse = jax.scipy.special.logsumexp(jnp.where(valid, lw, -jnp.inf), axis=0)
    return (jnp.logaddexp(running_lse, lse), running_sum + jnp.sum(jnp.where(valid, lw, 0.0), axis=0)), None

  starts = jnp.arange(0, k, chunk)
  init = (jnp.full(mean.shape[:1], -jnp.inf, mean.dtype), jnp.zeros(mean.shape[:1], mean.dtype))
  (total, lw_sum), _ = jax.lax.scan(body, init, starts)
  return total - math.log(k), lw_sum / k


def validate(config) -> None:
  vae_dense.validate(config)
  if config.step.k < 1:
    raise UserError(f"step.k must be >= 1 (importance samples per example), got {config.step.k}")


def init_state(rng, config, example_batch):
  return vae_dense.init_state(rng, config, example_batch)


def train_step(state, batch, rng, *, k: int = 5, axis_name=None):
  """One Adam step on -mean L_k (nats per image) with the reparameterized gradient of Burda et al.; `neg_elbo` is
  the k-sample average of -log w_i, an unbiased estimate of the negative ELBO from the same draws."""
  rng = step_key(rng, state.step, axis_name)
  x = batch["image"]

  def loss_fn(params):
    variables = {"params": params}
    mean, logvar = state.apply_fn(variables, x, method="encode")
    lw = log_weights(state, variables, x, mean, logvar, noise(rng, jnp.arange(k), mean.shape))
    bound = jax.scipy.special.logsumexp(lw, axis=0) - math.log(k)
    return -jnp.mean(bound), {"loss": -bound, "neg_elbo": -jnp.mean(lw, axis=0)}

  (_, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean(nets.mean_over_batch(per), axis_name)


def eval_step(state, batch, rng):
  """Per-example `neg_iwae` = -L_50 (one draw), and the single-sample `neg_elbo`, `recon`, `kl`; nats, each [B]."""
  k_elbo, k_iwae = jax.random.split(rng)
  per = vae_dense.eval_per_example(state, batch["image"], k_elbo)
  per["neg_iwae"] = -iwae_bound(state, batch["image"], k_iwae, EVAL_K)
  return per
