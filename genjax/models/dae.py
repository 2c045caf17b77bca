"""Denoising autoencoder: the dense autoencoder reconstructs the clean x from a corrupted copy x~ = corrupt(x).

loss = mean_batch reconstruction(decoder(encoder(x~)), x), against the CLEAN input. Dense: one 784 -> code -> 784
layer already denoises MNIST visibly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax import losses
from genjax import rng as fast_rng
from genjax.errors import UserError
from genjax.models import ae_dense
from genjax.models.ae_dense import forward, psnr, reconstruct, reconstruction_terms
from genjax.state import pmean, step_key

NOISES = ("gaussian", "mask")
DEFAULT_NOISE, DEFAULT_LEVEL = "gaussian", 0.5  # the defaults of train_step and eval_step


def validate(config) -> None:
  ae_dense.validate_common(config)
  s = config.step
  if s.noise not in NOISES:
    raise UserError(f"step.noise must be one of {NOISES}, got '{s.noise}'")
  if s.noise == "mask" and not 0.0 <= s.noise_level <= 1.0:
    raise UserError(f"step.noise_level is the fraction of pixels zeroed by mask noise: in [0, 1], got {s.noise_level}")
  if s.noise_level < 0:
    raise UserError(f"step.noise_level is the standard deviation of gaussian noise: >= 0, got {s.noise_level}")


def corrupt(x, rng, noise: str, level):
  """x~ = x + level * eps, eps ~ N(0, I) (`gaussian`, not clipped), or x with each pixel set to 0 independently
  with probability `level` (`mask`: masking noise, no rescaling). The draws are jax.random.normal's and
  jax.random.bernoulli's for `rng`, made by genjax.rng in one fused pass."""
  if noise == "gaussian":
    return x + level * fast_rng.normal(rng, x.shape, x.dtype)
  if noise == "mask":
    return jnp.where(fast_rng.bernoulli(rng, 1.0 - level, x.shape), x, jnp.zeros_like(x))
  raise ValueError(f"unknown noise '{noise}'; expected one of {NOISES}")


def train_step(state, batch, rng, *, loss: str = "mse", noise: str = DEFAULT_NOISE, noise_level: float = DEFAULT_LEVEL,
               axis_name=None):
  """One Adam step on mean_batch reconstruction `loss` (mse or bce) of the clean x from x~ = corrupt(x); the noise
  comes from fold_in(rng, step). The metrics are `loss` and the term under its own name, as in ae_dense.train_step;
  eval_step reports the other term and the noisy input's own PSNR."""
  x = batch["image"]
  noise_rng, dropout_rng = jax.random.split(step_key(rng, state.step, axis_name))
  x_noisy = corrupt(x, noise_rng, noise, noise_level)

  def loss_fn(params):
    logits, _ = forward(state, params, x_noisy, dropout_rng)
    per = reconstruction_terms(logits, x, (loss,))  # against the clean input
    return jnp.mean(per[loss]), per

  (value, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean({"loss": value, **{k: jnp.mean(v) for k, v in per.items()}}, axis_name)


def eval_step(state, batch, rng, *, noise: str = DEFAULT_NOISE, noise_level: float = DEFAULT_LEVEL):
  """Per-example metrics, each [B]: `mse`, `bce` (nats), `psnr` (dB) of the reconstruction of the clean x;
  `denoise_mse` and `denoise_psnr` of reconstruct(corrupt(x)) against x; `noisy_psnr` of corrupt(x) itself against x
  (the identity's score). The noise is drawn from `rng`."""
  x = batch["image"]
  logits, _ = forward(state, state.params, x)
  per = reconstruction_terms(logits, x)
  per["psnr"] = psnr(per["mse"])
  x_noisy = corrupt(x, rng, noise, noise_level)
  per["denoise_mse"] = losses.squared_error(reconstruct(state, x_noisy), x)
  per["denoise_psnr"] = psnr(per["denoise_mse"])
  per["noisy_psnr"] = psnr(losses.squared_error(x_noisy, x))
  return per


FAMILY = ae_dense.FAMILY._replace(name="dae", validate=validate, train_step=train_step, eval_step=eval_step)
