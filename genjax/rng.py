"""jax.random's numbers for the large draws of a training step, computed in one fused pass on CPU.

jax.random draws its bits with the threefry2x32 hash (20 rounds of add, rotate and xor on two uint32 words). On the
CPU backend JAX lowers the hash as a loop of five iterations, which keeps compiles short but makes XLA:CPU run it
as separate passes over memory, each writing two uint32 arrays the size of the output; on GPU the rounds are
emitted straight-line. `bits`, `uniform`, `normal` and `bernoulli` below write the same rounds straight-line in lax
ops, so that XLA fuses the hash, the float conversion and the caller's use into one loop, and they return exactly
jax.random's values for the same key and shape (tested bit for bit); docs/kernels.md has what that gains. The dae
draws its input noise here.

Where the values would not be jax.random's, they are jax.random's: each function hands over to it for a key of
another PRNG implementation, with `jax_threefry_partitionable` off (JAX's default has been on since 0.5), for
2^32 values or more, and for dtypes other than float16, bfloat16 and float32.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
_FLOATS = (jnp.float16, jnp.bfloat16, jnp.float32)


def threefry2x32(k1, k2, x1, x2):
  """The Threefry-2x32 hash of 20 rounds (Salmon et al. 2011), as jax.random computes it: key words k1, k2 and
  counter words x1, x2 (uint32, broadcast together) -> two uint32 words."""
  ks = (k1, k2, k1 ^ k2 ^ _PARITY)
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x1 = x1 + x2
      x2 = (x2 << np.uint32(r)) | (x2 >> np.uint32(32 - r))
      x2 = x1 ^ x2
    x1 = x1 + ks[(i + 1) % 3]
    x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x1, x2


def _key_words(key):
  """The two uint32 words of a single threefry2x32 key whose draws jax.random makes with the partitionable
  counters, else None."""
  if not getattr(jax.config, "jax_threefry_partitionable", True):  # a JAX without the flag is partitionable
    return None
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
      return None
    key = jax.random.key_data(key)
  elif (key.dtype != jnp.uint32 or key.shape != (2,)
        or getattr(jax.config, "jax_default_prng_impl", "threefry2x32") != "threefry2x32"):
    return None
  return key[0], key[1]


def _fast(key, shape, dtype) -> tuple | None:
  words = _key_words(key)
  if words is None or math.prod(shape) >= 2**32 or jnp.dtype(dtype) not in map(jnp.dtype, _FLOATS):
    return None
  return words


def _bits(words, shape):
  """jax.random.bits(key, shape) as uint32: the hash of each value's 64-bit flat index (its high word is 0 below
  2^32 values), the two output words xored."""
  lo = jnp.zeros(shape, jnp.uint32)
  if shape:
    for axis, stride in enumerate(np.cumprod((1,) + shape[:0:-1])[::-1]):
      lo = lo + lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(stride)
  b1, b2 = threefry2x32(*words, jnp.zeros(shape, jnp.uint32), lo)
  return b1 ^ b2


def bits(key, shape):
  """jax.random.bits(key, shape): uniform uint32."""
  shape = tuple(shape)
  words = _fast(key, shape, jnp.float32)  # any dtype _fast accepts: bits has none
  return jax.random.bits(key, shape) if words is None else _bits(words, shape)


def _unit(words, shape, dtype):
  """Floats in [0, 1) as jax.random.uniform makes them: random bits (8 of them for dtypes with fewer than 8 mantissa
  bits, such as bfloat16, else the dtype's width) shifted into the mantissa of a float in [1, 2), minus 1."""
  dtype = jnp.dtype(dtype)
  nbits, nmant = jnp.finfo(dtype).bits, jnp.finfo(dtype).nmant
  rng_bits = 8 if nmant < 8 else nbits
  uint = jnp.uint32 if nbits == 32 else jnp.uint16
  b = _bits(words, shape)
  if rng_bits < 32:
    b = b & np.uint32(2**rng_bits - 1)
  one = np.array(1.0, dtype).view(uint)
  mantissa = (b.astype(uint) >> uint(rng_bits - nmant)) | uint(one)
  return lax.bitcast_convert_type(mantissa, dtype) - jnp.array(1.0, dtype)


def uniform(key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0):
  """jax.random.uniform(key, shape, dtype, minval, maxval)."""
  shape = tuple(shape)
  words = _fast(key, shape, dtype)
  if words is None:
    return jax.random.uniform(key, shape, dtype, minval, maxval)
  return _between(words, shape, dtype, minval, maxval)


def _between(words, shape, dtype, minval, maxval):
  """jax.random.uniform's floats in [minval, maxval): the unit draw scaled and shifted, clipped below at minval."""
  lo, hi = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
  return lax.max(lo, _unit(words, shape, dtype) * (hi - lo) + lo)


def normal(key, shape, dtype=jnp.float32):
  """jax.random.normal(key, shape, dtype): sqrt(2) erfinv(u) with u uniform on (-1, 1)."""
  shape = tuple(shape)
  words = _fast(key, shape, dtype)
  if words is None:
    return jax.random.normal(key, shape, dtype)
  dtype = jnp.dtype(dtype)
  u = _between(words, shape, dtype, np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype)), 1.0)
  return jnp.asarray(np.sqrt(2), dtype) * lax.erf_inv(u)


def bernoulli(key, p, shape):
  """jax.random.bernoulli(key, p, shape): uniform(key, shape, dtype of p) < p."""
  shape = tuple(shape)
  p = jnp.asarray(p)
  if not jnp.issubdtype(p.dtype, jnp.floating):
    raise TypeError(f"bernoulli probability p must have a floating dtype, got {p.dtype}")
  words = _fast(key, shape, p.dtype)
  if words is None:
    return jax.random.bernoulli(key, p, shape)
  return _unit(words, shape, p.dtype) < p
