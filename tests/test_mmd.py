"""genjax.mmd: the MMD estimators against a double loop in float64, the unbiased estimator's zero mean against the
V-statistic's upward bias (the bug other zoos shipped), and the kernel mixture."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from genjax import mmd

BW = (0.5, 1.0, 2.0)


def _mmd_loops(x, y, bandwidths, unbiased):
  """MMD^2 by explicit double loops in float64, from the definition."""
  k = lambda a, b: sum(np.exp(-np.sum((a - b) ** 2) / (2 * s * s)) for s in bandwidths)
  m, n = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j or not unbiased)
  kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j or not unbiased)
  kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
  if unbiased:
    return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)
  return kxx / m ** 2 + kyy / n ** 2 - 2 * kxy / (m * n)


def test_mmd_matches_a_double_loop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 3)).astype(np.float32)
  y = (rng.normal(size=(5, 3)) + 0.5).astype(np.float32)  # m != n
  np.testing.assert_allclose(mmd.mmd2_unbiased(x, y, BW), _mmd_loops(x, y, BW, True), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(mmd.mmd2_biased(x, y, BW), _mmd_loops(x, y, BW, False), rtol=1e-4, atol=1e-6)
  # Images [B, H, W, C] are compared as flattened vectors; per-example shares average to the statistic.
  a, b = x[:5].reshape(5, 3, 1, 1), y.reshape(5, 3, 1, 1)
  np.testing.assert_allclose(mmd.mmd2_unbiased(a, b, BW), _mmd_loops(x[:5], y, BW, True), rtol=1e-4, atol=1e-6)
  per = mmd.mmd2_unbiased_per_example(a, b, BW)
  chex.assert_shape(per, (5,))
  np.testing.assert_allclose(per.mean(), mmd.mmd2_unbiased(a, b, BW), rtol=1e-5, atol=1e-6)


def test_unbiased_estimator_averages_to_zero_and_the_v_statistic_does_not():
  # 4000 pairs of 8-point samples from the same 2-d Gaussian.
  keys = jax.random.split(jax.random.PRNGKey(0), 4000)

  @jax.jit
  def both(keys):
    def one(k):
      x, y = jax.random.normal(k, (2, 8, 2))
      return mmd.mmd2_unbiased(x, y, BW), mmd.mmd2_biased(x, y, BW)
    return jax.vmap(one)(keys)

  u, v = (np.asarray(a, np.float64) for a in both(keys))
  se_u, se_v = u.std() / np.sqrt(len(u)), v.std() / np.sqrt(len(v))
  assert abs(u.mean()) < 3 * se_u, (u.mean(), se_u)
  assert v.mean() > 20 * se_v and np.all(v >= -1e-6)  # the kept diagonals bias it upward
  assert np.any(u < 0)  # an unbiased estimate of 0 must go negative sometimes


def test_mmd_between_different_distributions_is_positive_and_grows_with_the_shift():
  x, y = jax.random.normal(jax.random.PRNGKey(1), (2, 500, 2))
  values = [float(mmd.mmd2_unbiased(x, y + jnp.array([d, 0.0]), BW)) for d in (0.0, 0.25, 0.5, 1.0, 2.0)]
  assert abs(values[0]) < 0.01
  assert all(b > a for a, b in zip(values, values[1:])), values
  assert values[1] > 0.01


def test_kernel_mixture_sums_every_bandwidth():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
  d2 = ((x[:, None] - y[None]) ** 2).sum(-1)
  bws = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
  np.testing.assert_allclose(mmd.kernel(x, y, bws), sum(np.exp(-d2 / (2 * s * s)) for s in bws), rtol=1e-5)
  np.testing.assert_allclose(np.diagonal(mmd.kernel(x, x, bws)), len(bws), rtol=1e-6)
  assert mmd.BANDWIDTHS == bws
  full = mmd.kernel(3 * x, 3 * y, bws)  # spread out, so that even s = 2 contributes
  for i, s in enumerate(bws):  # dropping any one bandwidth removes exactly its term
    term = full - mmd.kernel(3 * x, 3 * y, bws[:i] + bws[i + 1:])
    np.testing.assert_allclose(term, np.exp(-9 * d2 / (2 * s * s)), rtol=1e-3, atol=1e-5)
    assert float(term.max()) > 0.1
