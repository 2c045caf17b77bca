"""Losses against their closed forms, under jit, and against bugs other zoos shipped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import losses


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def test_gaussian_kl_matches_monte_carlo():
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(3, 4)).astype(np.float32)
  logvar = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
  kl = jax.jit(losses.gaussian_kl)(mean, logvar)
  # E_q[log q(z) - log p(z)] with 400k samples per example.
  std = np.exp(0.5 * logvar)
  eps = rng.normal(size=(400_000, 3, 4))
  z = mean + std * eps
  log_q = -0.5 * (eps ** 2 + logvar + np.log(2 * np.pi))
  log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
  mc = np.mean(np.sum(log_q - log_p, axis=-1), axis=0)
  np.testing.assert_allclose(kl, mc, rtol=0.02, atol=0.02)
  assert kl.shape == (3,)


def test_gaussian_kl_sign_and_zero():
  # A flipped sign or a missing 1/2 (bugs seen in other zoos) fails these.
  assert float(losses.gaussian_kl(jnp.zeros((1, 5)), jnp.zeros((1, 5)))[0]) == 0.0
  np.testing.assert_allclose(losses.gaussian_kl(jnp.ones((1, 2)), jnp.zeros((1, 2))), [1.0], rtol=1e-6)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((1, 1)), jnp.log(jnp.full((1, 1), 4.0))),
                             [0.5 * (4.0 - 1.0 - np.log(4.0))], rtol=1e-6)


def test_bernoulli_nll_matches_formula():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 28, 28, 1)).astype(np.float32) * 3
  x = rng.uniform(size=(4, 28, 28, 1)).astype(np.float32)
  ref = -np.sum(x * _log_sigmoid(logits) + (1 - x) * _log_sigmoid(-logits), axis=(1, 2, 3))
  np.testing.assert_allclose(jax.jit(losses.bernoulli_nll)(logits, x), ref, rtol=1e-5)


def test_squared_error_is_per_example_mean():
  x = jnp.zeros((2, 2, 2, 1))
  x_hat = x.at[1].set(2.0)
  np.testing.assert_allclose(losses.squared_error(x_hat, x), [0.0, 4.0])


REF_D = {
    "non_saturating": lambda r, f: -_log_sigmoid(r) - _log_sigmoid(-f),
    "minimax": lambda r, f: -_log_sigmoid(r) - _log_sigmoid(-f),
    "hinge": lambda r, f: np.maximum(0, 1 - r) + np.maximum(0, 1 + f),
    "least_squares": lambda r, f: 0.5 * (r - 1) ** 2 + 0.5 * f ** 2,
}
REF_G = {
    "non_saturating": lambda f: -_log_sigmoid(f),          # -log D(G(z))
    "minimax": lambda f: _log_sigmoid(-f),                  # log(1 - D(G(z)))
    "hinge": lambda f: -f,
    "least_squares": lambda f: 0.5 * (f - 1) ** 2,
}


@pytest.mark.parametrize("kind", losses.GAN_LOSSES)
def test_gan_losses_match_docstring_formulas(kind):
  rng = np.random.default_rng(2)
  r, f = rng.normal(size=16).astype(np.float32) * 4, rng.normal(size=16).astype(np.float32) * 4
  d = jax.jit(losses.discriminator_loss, static_argnums=2)(r, f, kind)
  g = jax.jit(losses.generator_loss, static_argnums=1)(f, kind)
  assert d.shape == g.shape == (16,)
  np.testing.assert_allclose(d, REF_D[kind](r, f), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(g, REF_G[kind](f), rtol=1e-5, atol=1e-6)


def test_non_saturating_generator_gradient_does_not_vanish():
  # When D confidently rejects fakes (logit -10), the minimax G gradient vanishes; the non-saturating one does not.
  f = jnp.array([-10.0])
  g_ns = jax.grad(lambda f: losses.generator_loss(f, "non_saturating").sum())(f)
  g_mm = jax.grad(lambda f: losses.generator_loss(f, "minimax").sum())(f)
  assert abs(float(g_ns[0])) > 0.99 and abs(float(g_mm[0])) < 1e-4


def test_unknown_gan_loss_raises():
  with pytest.raises(ValueError, match="unknown GAN loss"):
    losses.generator_loss(jnp.zeros(2), "wasserstein?")
