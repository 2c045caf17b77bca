"""Pure per-example losses: each takes a batch and returns shape [B]; the caller reduces."""

from __future__ import annotations

import jax
import jax.numpy as jnp

GAN_LOSSES = ("non_saturating", "minimax", "hinge", "least_squares")


def _sum_per_example(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def bernoulli_nll(logits, x):
  """-log p(x | logits) = sum_i softplus(l_i) - x_i l_i, summed over pixels; x may be gray values in [0, 1]."""
  return _sum_per_example(jax.nn.softplus(logits) - x * logits)


def squared_error(x_hat, x):
  """Mean over pixels of (x_hat - x)^2."""
  d = (x_hat - x).reshape(x.shape[0], -1)
  return jnp.mean(d * d, axis=-1)


def gaussian_kl(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) = 1/2 sum_j (exp(logvar_j) + mean_j^2 - 1 - logvar_j)."""
  return 0.5 * _sum_per_example(jnp.exp(logvar) + mean * mean - 1.0 - logvar)


def discriminator_loss(real_logits, fake_logits, kind: str = "non_saturating"):
  """Loss of D on logits of real and generated examples, per example:

  - non_saturating, minimax: -log D(x) - log(1 - D(G(z))) = softplus(-l_real) + softplus(l_fake)
  - hinge: relu(1 - l_real) + relu(1 + l_fake)
  - least_squares: 1/2 (l_real - 1)^2 + 1/2 l_fake^2
  """
  r, f = real_logits.reshape(-1), fake_logits.reshape(-1)
  if kind in ("non_saturating", "minimax"):
    return jax.nn.softplus(-r) + jax.nn.softplus(f)
  if kind == "hinge":
    return jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f)
  if kind == "least_squares":
    return 0.5 * (r - 1.0) ** 2 + 0.5 * f ** 2
  raise ValueError(f"unknown GAN loss '{kind}'; expected one of {GAN_LOSSES}")


def generator_loss(fake_logits, kind: str = "non_saturating"):
  """Loss of G on the logits D gives its samples, per example:

  - non_saturating: -log D(G(z)) = softplus(-l)
  - minimax: log(1 - D(G(z))) = -softplus(l), the saturating term of the value function
  - hinge: -l
  - least_squares: 1/2 (l - 1)^2
  """
  f = fake_logits.reshape(-1)
  if kind == "non_saturating":
    return jax.nn.softplus(-f)
  if kind == "minimax":
    return -jax.nn.softplus(f)
  if kind == "hinge":
    return -f
  if kind == "least_squares":
    return 0.5 * (f - 1.0) ** 2
  raise ValueError(f"unknown GAN loss '{kind}'; expected one of {GAN_LOSSES}")
