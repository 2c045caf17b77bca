"""genjax.rng: jax.random's values bit for bit, as one straight-line program, and jax.random itself where they
would differ."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import rng

KEYS = {"raw": jax.random.PRNGKey(3), "typed": jax.random.key(7),
        "folded": jax.random.fold_in(jax.random.PRNGKey(1), 5)}
DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
PS = (0.0, 0.3, 0.5, 1.0)


@functools.partial(jax.jit, static_argnums=1)
def _both(key, shape):
  """genjax.rng's draws and jax.random's, in one program per key type and shape."""
  def draws(m):
    return {"bits": m.bits(key, shape),
            **{f"normal {d.__name__}": m.normal(key, shape, d) for d in DTYPES},
            **{f"uniform {d.__name__}": m.uniform(key, shape, d, -1.0, 3.0) for d in DTYPES},
            **{f"bernoulli {p}": m.bernoulli(key, p, shape) for p in PS}}
  return draws(rng), draws(jax.random)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4, 5, 7), (64, 28, 28, 1)], ids=str)
def test_the_draws_are_jax_randoms_bit_for_bit(shape):
  for key in KEYS.values():
    ours, theirs = _both(key, shape)
    for name in theirs:
      assert ours[name].dtype == theirs[name].dtype and ours[name].shape == theirs[name].shape, name
      np.testing.assert_array_equal(np.asarray(ours[name], np.float32), np.asarray(theirs[name], np.float32), name)


def test_the_draws_under_vmap_and_a_traced_probability():
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  np.testing.assert_array_equal(jax.vmap(lambda k: rng.normal(k, (10, 3)))(keys),
                                jax.vmap(lambda k: jax.random.normal(k, (10, 3)))(keys))
  key = jax.random.PRNGKey(3)
  p = jax.random.uniform(key, (50,))[7]  # a draw equal to p is not a success: u < p
  np.testing.assert_array_equal(rng.bernoulli(key, p, (50,)), jax.random.bernoulli(key, p, (50,)))
  p = jnp.linspace(0.1, 0.9, 4)
  np.testing.assert_array_equal(jax.jit(jax.vmap(lambda k, q: rng.bernoulli(k, q, (50,))))(keys, p),
                                jax.vmap(lambda k, q: jax.random.bernoulli(k, q, (50,)))(keys, p))


def test_the_hash_is_threefry2x32s_published_answer():
  # Random123's known-answer test for threefry2x32_20 (kat_vectors): key (0x13198a2e, 0x03707344), counter
  # (0x243f6a88, 0x85a308d3) -> (0xc4923a9c, 0x483df7a0).
  u = lambda v: jnp.asarray(v, jnp.uint32)  # noqa: E731
  out = rng.threefry2x32(u(0x13198A2E), u(0x03707344), u(0x243F6A88), u(0x85A308D3))
  assert [int(o) for o in out] == [0xC4923A9C, 0x483DF7A0]


def test_the_program_has_no_loop():
  # jax.random lowers the 20 rounds on CPU as a while loop of 5 iterations: separate passes over memory.
  text = jax.jit(lambda k: rng.normal(k, (128, 784))).lower(jax.random.PRNGKey(0)).as_text()
  assert "while" not in text and "threefry" not in text


@pytest.mark.parametrize("why", ["rbg key", "not partitionable"])
def test_other_keys_and_settings_get_jax_randoms_own_draws(why):
  key, shape = jax.random.key(0, impl="rbg"), (16, 8)
  if why == "not partitionable":
    key = jax.random.PRNGKey(0)
  with jax.threefry_partitionable(why != "not partitionable"):
    for ours, theirs in [(rng.normal(key, shape), jax.random.normal(key, shape)),
                         (rng.uniform(key, shape), jax.random.uniform(key, shape)),
                         (rng.bernoulli(key, 0.5, shape), jax.random.bernoulli(key, 0.5, shape)),
                         (rng.bits(key, shape), jax.random.bits(key, shape))]:
      np.testing.assert_array_equal(ours, theirs)
