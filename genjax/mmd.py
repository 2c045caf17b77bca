"""Maximum mean discrepancy with a mixture of Gaussian kernels (Gretton et al. 2012; Li, Swersky & Zemel 2015).

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) for x, x' ~ P and y, y' ~ Q. With a characteristic kernel it is
zero exactly when P = Q. The kernel here is k(x, y) = sum_s exp(-||x - y||^2 / (2 s^2)) over bandwidths s.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

# The data-space bandwidths of Li et al. (2015) for MNIST pixels in [0, 1].
BANDWIDTHS = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)


def squared_distances(x_NxD, y_MxD):
  """||x_i - y_j||^2 as an [N, M] matrix, from ||x||^2 + ||y||^2 - 2 x.y clipped at 0 against rounding."""
  x = x_NxD.reshape(x_NxD.shape[0], -1)
  y = y_MxD.reshape(y_MxD.shape[0], -1)
  xx = jnp.sum(x * x, axis=-1)
  yy = jnp.sum(y * y, axis=-1)
  return jnp.maximum(xx[:, None] + yy[None, :] - 2.0 * (x @ y.T), 0.0)


def kernel(x_NxD, y_MxD, bandwidths: Sequence[float] = BANDWIDTHS):
  """k(x_i, y_j) = sum_s exp(-||x_i - y_j||^2 / (2 s^2)) as an [N, M] matrix; inputs [N, ...] and [M, ...]."""
  d2 = squared_distances(x_NxD, y_MxD)
  return sum(jnp.exp(-d2 / (2.0 * float(s) ** 2)) for s in bandwidths)


def _terms(x, y, bandwidths):
  """Kernel matrices within x, within y and across."""
  return kernel(x, x, bandwidths), kernel(y, y, bandwidths), kernel(x, y, bandwidths)


def _off_diagonal_mean(k_NxN):
  n = k_NxN.shape[0]
  return (jnp.sum(k_NxN) - jnp.trace(k_NxN)) / max(n * (n - 1), 1)


def mmd2_unbiased(x_MxD, y_NxD, bandwidths: Sequence[float] = BANDWIDTHS):
  """The unbiased U-statistic (Gretton et al. 2012, eq. 3), a scalar that may be slightly negative:

  MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j) - 2/(mn) sum_{i,j} k(x_i, y_j).
  """
  kxx, kyy, kxy = _terms(x_MxD, y_NxD, bandwidths)
  return _off_diagonal_mean(kxx) + _off_diagonal_mean(kyy) - 2.0 * jnp.mean(kxy)


def mmd2_biased(x_MxD, y_NxD, bandwidths: Sequence[float] = BANDWIDTHS):
  """The biased V-statistic, which keeps the diagonal k(x_i, x_i) = len(bandwidths) terms and so is >= 0:

  MMD^2_b = 1/m^2 sum_{i,j} k(x_i, x_j) + 1/n^2 sum_{i,j} k(y_i, y_j) - 2/(mn) sum_{i,j} k(x_i, y_j).
  """
  kxx, kyy, kxy = _terms(x_MxD, y_NxD, bandwidths)
  return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)


def mmd2_unbiased_per_example(x_BxD, y_BxD, bandwidths: Sequence[float] = BANDWIDTHS):
  """Each pair's share of MMD^2_u for equal sample sizes m = n = B, shape [B]; their mean is `mmd2_unbiased`:

  e_i = 1/(B-1) sum_{j!=i} k(x_i, x_j) + 1/(B-1) sum_{j!=i} k(y_i, y_j) - 1/B sum_j (k(x_i, y_j) + k(x_j, y_i)).
  """
  b = x_BxD.shape[0]
  if y_BxD.shape[0] != b:
    raise ValueError(f"per-example MMD needs equal sample sizes, got {b} and {y_BxD.shape[0]}")
  kxx, kyy, kxy = _terms(x_BxD, y_BxD, bandwidths)
  within = lambda k: (jnp.sum(k, axis=1) - jnp.diagonal(k)) / max(b - 1, 1)
  return within(kxx) + within(kyy) - (jnp.sum(kxy, axis=1) + jnp.sum(kxy, axis=0)) / b
