"""Pure per-example losses: each takes a batch and returns shape [B]; the caller reduces."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax import mmd

GAN_LOSSES = ("non_saturating", "minimax", "hinge", "least_squares")


def _sum_per_example(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def bernoulli_nll(logits, x):
  """-log p(x | logits) = sum_i softplus(l_i) - x_i l_i, summed over pixels; x may be gray values in [0, 1].

  Flattened before the elementwise work: on [B, 28, 28, 1], whose innermost axis has one element, XLA:CPU runs the
  softplus fusion several times slower (docs/kernels.md, design choices)."""
  lg, x = logits.reshape(logits.shape[0], -1), x.reshape(x.shape[0], -1)
  return jnp.sum(jax.nn.softplus(lg) - x * lg, axis=-1)


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


def critic_loss(real_scores, fake_scores):
  """Loss of a Wasserstein critic per example: D(G(z)) - D(x). Minimizing its mean maximizes
  E[D(x)] - E[D(G(z))], the critic's estimate of the Wasserstein-1 distance (Arjovsky et al. 2017)."""
  return fake_scores.reshape(-1) - real_scores.reshape(-1)


def wasserstein_generator_loss(fake_scores):
  """Loss of a Wasserstein generator per example: -D(G(z))."""
  return -fake_scores.reshape(-1)


def interpolate(real, fake, rng):
  """x_hat = eps x + (1 - eps) G(z) with one eps ~ U[0, 1] per example (broadcast over its pixels); returns
  (x_hat, eps [B])."""
  eps_B = jax.random.uniform(rng, (real.shape[0],), real.dtype)
  eps = eps_B.reshape((-1,) + (1,) * (real.ndim - 1))
  return eps * real + (1.0 - eps) * fake, eps_B


def gradient_penalty(critic_fn, real, fake, rng):
  """WGAN-GP's penalty per example (Gulrajani et al. 2017): (||grad_x D(x_hat)||_2 - 1)^2 at the interpolate
  x_hat of `interpolate`, the norm taken over all of the example's non-batch axes (H, W, C).

  `critic_fn` maps a batch [B, ...] to scores [B] and must score each example on its own (no BatchNorm, no
  minibatch statistics): then the gradient of the summed scores holds each example's own gradient. The norm is
  sqrt(sum g^2 + 1e-12), so the penalty stays differentiable where the gradient vanishes.
  """
  x_hat, _ = interpolate(real, fake, rng)
  g = jax.grad(lambda v: jnp.sum(critic_fn(v)))(x_hat)
  norm = jnp.sqrt(_sum_per_example(g * g) + 1e-12)
  return (norm - 1.0) ** 2


def r1_penalty(critic_fn, real):
  """The R1 penalty per example (Mescheder et al. 2018): ||grad_x D(x)||^2 at the real images, the squared norm over
  the example's non-batch axes; the step adds gamma / 2 times its mean. `critic_fn` must score each example on its
  own (see `gradient_penalty`)."""
  g = jax.grad(lambda v: jnp.sum(critic_fn(v)))(real)
  return _sum_per_example(g * g)


def feature_matching(real_features, fake_features):
  """Feature matching (Salimans et al. 2016): ||mean_b f(x_b) - mean_b f(G(z_b))||^2 over D's intermediate
  features [B, F]. A batch statistic: returns a scalar, not one value per example."""
  d = jnp.mean(real_features.reshape(real_features.shape[0], -1), axis=0) - jnp.mean(
      fake_features.reshape(fake_features.shape[0], -1), axis=0)
  return jnp.sum(d * d)


FEATURE_MMD_BANDWIDTHS = (0.5, 1.0, 2.0)  # in units of the median distance between real features


def feature_mmd(real_features, fake_features, bandwidths=FEATURE_MMD_BANDWIDTHS):
  """Feature matching of the whole distribution rather than its mean: the unbiased MMD^2 (Gretton et al. 2012)
  between D's features [B, F] of a real and a fake batch, as a GMMN (Li et al. 2015) matches pixels and an MMD GAN
  (Li et al. 2017) a learned embedding. The Gaussian kernels' bandwidths are `bandwidths` times the median distance
  between the real features (taken as a constant), so the loss does not depend on the features' scale. A batch
  statistic: returns a scalar, zero in expectation when the two batches come from one distribution."""
  r = real_features.reshape(real_features.shape[0], -1)
  f = fake_features.reshape(fake_features.shape[0], -1)
  i, j = jnp.triu_indices(r.shape[0], 1)
  median = jax.lax.stop_gradient(jnp.median(mmd.squared_distances(r, r)[i, j]))
  scale = jnp.sqrt(jnp.maximum(median, 1e-12))
  return mmd.mmd2_unbiased(r / scale, f / scale, bandwidths)


def historical_average_penalty(params, average):
  """Historical averaging (Salimans et al. 2016): ||theta - theta_avg||^2 summed over every parameter, where
  theta_avg is the running mean of the player's past parameters. A scalar."""
  sq = jax.tree.map(lambda p, a: jnp.sum((p - a) ** 2), params, average)
  return sum(jax.tree.leaves(sq), jnp.zeros((), jnp.float32))
