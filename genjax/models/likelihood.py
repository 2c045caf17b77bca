"""Importance-weighted bounds on log p(x) for any Gaussian-latent, Bernoulli-likelihood VAE state of this repo
(Burda, Grosse & Salakhutdinov 2015):

L_k(x) = E[log (1/k) sum_i w_i],  w_i = p(x | z_i) p(z_i) / q(z_i | x),  z_1..z_k ~ q(z | x) independently,

which is the ELBO for k = 1, never decreases with k and tends to log p(x). The state's module has
`encode(x, *cond) -> (mean, logvar)` and `decode(z, *cond) -> logits` (`vae`, `vae_dense`, `iwae`, and `cvae`
given its one-hot label as `cond`); the bounds are computed in chunks over k so that k = 5000 fits in memory.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from genjax import losses

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(eps, logvar):
  """log N(mean + sigma * eps; mean, sigma^2) = -1/2 sum_j (eps_j^2 + logvar_j + log 2 pi)."""
  return -0.5 * jnp.sum(eps * eps + logvar + LOG_2PI, axis=-1)


def log_weights(state, variables, x, mean, logvar, eps_KxBxD, cond=()):
  """log w = log p(x | z) + log p(z) - log q(z | x) for z = mean + sigma * eps, shape [K, B]."""
  k, b, d = eps_KxBxD.shape
  z = mean + jnp.exp(0.5 * logvar) * eps_KxBxD
  cond_k = [jnp.tile(c, (k, 1)) for c in cond]  # row i * B + j of z belongs to example j
  logits = state.apply_fn(variables, z.reshape(k * b, d), *cond_k, method="decode").reshape(k, *x.shape)
  log_px = -jax.vmap(losses.bernoulli_nll, in_axes=(0, None))(logits, x)
  log_pz = gaussian_log_density(z, jnp.zeros_like(logvar))
  log_qz = gaussian_log_density(eps_KxBxD, logvar)
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
  variables = state.variables if params is None else {**state.variables, "params": params}
  mean, logvar = state.apply_fn(variables, x, *cond, method="encode")
  return chunked_bounds(lambda idx: log_weights(state, variables, x, mean, logvar, noise(rng, idx, mean.shape), cond),
                        k, chunk, mean.shape[0], mean.dtype)


def chunked_bounds(log_weights_fn, k: int, chunk: int, batch: int, dtype):
  """(log (1/k) sum_i w_i, (1/k) sum_i log w_i), each [batch], from `log_weights_fn(indices [K]) -> log w [K, batch]`
  of the importance samples with those indices: all k at once, or `chunk` at a time in a `lax.scan` carrying a
  running logsumexp and sum (memory grows with `chunk`, not k). Any model's importance weights: `bounds` for one
  Gaussian latent, `iwae2` for two stochastic layers."""
  k, chunk = int(k), int(chunk)
  if k < 1:
    raise ValueError(f"the importance-weighted bound needs k >= 1, got {k}")
  if chunk <= 0 or chunk >= k:
    lw = log_weights_fn(jnp.arange(k))
    return jax.scipy.special.logsumexp(lw, axis=0) - math.log(k), jnp.mean(lw, axis=0)

  def body(carry, start):
    running_lse, running_sum = carry
    idx = start + jnp.arange(chunk)
    lw = log_weights_fn(idx)
    valid = idx[:, None] < k  # the last chunk may run past k
    lse = jax.scipy.special.logsumexp(jnp.where(valid, lw, -jnp.inf), axis=0)
    return (jnp.logaddexp(running_lse, lse), running_sum + jnp.sum(jnp.where(valid, lw, 0.0), axis=0)), None

  starts = jnp.arange(0, k, chunk)
  init = (jnp.full((batch,), -jnp.inf, dtype), jnp.zeros((batch,), dtype))
  (total, lw_sum), _ = jax.lax.scan(body, init, starts)
  return total - math.log(k), lw_sum / k


def family_bounds(state, x, labels, rng, k: int, *, chunk: int = 0):
  """The `likelihood_bounds` of an unconditional VAE family: `bounds`; the labels are not read."""
  del labels
  return bounds(state, x, rng, k, chunk=chunk)
