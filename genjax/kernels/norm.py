"""BatchNorm's training-mode arithmetic with sums in the form XLA:CPU runs fast."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from genjax.kernels.backend import enabled


def channel_sums(x_NxC):
  """[N, C] -> [C], the sum over rows: a matmul with a row of ones where kernels are `enabled()` (XLA:CPU splits a
  long reduction into a reduce-window and a reduce, which run far below memory bandwidth), jnp.sum(x, 0)
  otherwise. The two differ only in the order of the float32 additions."""
  if enabled():
    return jnp.ones((x_NxC.shape[0],), x_NxC.dtype) @ x_NxC
  return jnp.sum(x_NxC, axis=0)


def _bn_stats(x2, eps):
  mean, mean2 = channel_sums(x2) / x2.shape[0], channel_sums(x2 * x2) / x2.shape[0]
  var = jnp.maximum(0.0, mean2 - mean * mean)
  return mean, var, jax.lax.rsqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x_NxC, scale, bias, eps):
  """BatchNorm of rows [N, C] on their own statistics, as Flax's nn.BatchNorm computes it (float32 statistics,
  var = E[x^2] - E[x]^2 clipped at 0): returns (y, mean, var), equal to autodiff of that formula in value and the
  gradients of all three inputs, for cotangents of all three outputs. Both passes make their per-channel sums with
  `channel_sums`, and the backward pass is the closed form
  dx = scale / std * (dy - mean(dy) - xhat mean(dy xhat)) (plus the terms of the mean and var outputs).
  Used by nets.BatchNorm in training mode on one device, on every backend."""
  return _bn_fwd(x_NxC, scale, bias, eps)[0]


def _bn_fwd(x, scale, bias, eps):
  mean, var, rstd = _bn_stats(x, eps)
  return ((x - mean) * (rstd * scale) + bias, mean, var), (x, mean, rstd, scale)


def _bn_bwd(eps, res, cts):
  x, mean, rstd, scale = res
  dy, dmean, dvar = cts
  n = x.shape[0]
  xhat = (x - mean) * rstd
  dbias, dscale = channel_sums(dy), channel_sums(dy * xhat)
  dx = (scale * rstd) * (dy - dbias / n - xhat * (dscale / n)) + dmean / n + (2.0 / n) * dvar * (x - mean)
  return dx, dscale, dbias


batch_norm_train.defvjp(_bn_fwd, _bn_bwd)
