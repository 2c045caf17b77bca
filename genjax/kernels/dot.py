"""`dot_general` for nn.Dense: bfloat16 matmuls that accumulate in float32, forward and backward."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _dense_dims(lhs, rhs, dimension_numbers) -> bool:
  """Whether `dimension_numbers` is nn.Dense's: the last axis of `lhs` against the first of a 2-D `rhs`."""
  (lc, rc), (lb, rb) = dimension_numbers
  return rhs.ndim == 2 and tuple(lc) == (lhs.ndim - 1,) and tuple(rc) == (0,) and not tuple(lb) and not tuple(rb)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _accumulating_dense(x, kernel, precision):
  y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                          preferred_element_type=jnp.float32)
  return y.astype(x.dtype)


def _accumulating_dense_fwd(x, kernel, precision):
  return _accumulating_dense(x, kernel, precision), (x, kernel)


def _accumulating_dense_bwd(precision, res, dy):
  x, kernel = res
  f32 = jnp.float32
  dx = jax.lax.dot_general(dy, kernel, (((dy.ndim - 1,), (1,)), ((), ())), precision=precision,
                           preferred_element_type=f32)
  batch = tuple(range(x.ndim - 1))
  dk = jax.lax.dot_general(x, dy, ((batch, batch), ((), ())), precision=precision, preferred_element_type=f32)
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_accumulating_dense.defvjp(_accumulating_dense_fwd, _accumulating_dense_bwd)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """`lax.dot_general` with lax's signature, for nn.Dense's `dot_general` hook. Where both operands are bfloat16 (or
  float16), no result type is asked for and the contraction is Dense's (the last axis of `lhs` against the first of
  a 2-D `rhs`), the products accumulate in float32, in the forward pass and both gradients, and each result is
  rounded to the operands' dtype once: the float32-accumulated product, where lax's would round a bfloat16 result.
  Any other call is lax.dot_general's, so float32 models compute bit for bit as with plain nn.Dense. Used on every
  backend (it is what GPU matmul units do with bfloat16 operands); not switched by `enabled()`."""
  if (preferred_element_type is None and lhs.dtype == rhs.dtype and lhs.dtype in LOW_PRECISION
      and _dense_dims(lhs, rhs, dimension_numbers)):
    return _accumulating_dense(lhs, rhs, precision)
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                             preferred_element_type=preferred_element_type)
