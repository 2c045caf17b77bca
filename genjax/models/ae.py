"""Deep convolutional undercomplete autoencoder: x -> code h -> x_hat = sigmoid(decoder(h)); optional dropout
before the code layer (`model.dropout`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.errors import UserError
from genjax.models import nets
from genjax.models.ae_dense import RECONSTRUCTION_LOSSES, psnr, reconstruction_terms
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key


class AutoEncoder(nn.Module):
  shape: tuple
  code_dim: int = 16
  features: tuple = (32, 64)
  upsample: str = "transpose"
  dropout: float = 0.0

  def setup(self):
    self.encoder = nets.ConvEncoder(self.code_dim, self.features, self.dropout)
    self.decoder = nets.ConvDecoder(self.shape, tuple(reversed(self.features)), self.upsample)

  def encode(self, x, train: bool = False):
    return self.encoder(x, train)

  def decode(self, h):
    return self.decoder(h)

  def __call__(self, x, train: bool = False):
    h = self.encode(x, train)
    return self.decode(h), h


def _module(config, shape) -> AutoEncoder:
  m = config.model
  return AutoEncoder(tuple(shape), m.code_dim, tuple(m.features), m.upsample, m.get("dropout", 0.0))


def validate(config) -> None:
  if config.step.loss not in RECONSTRUCTION_LOSSES:
    raise UserError(f"step.loss must be one of {RECONSTRUCTION_LOSSES}, got '{config.step.loss}'")
  if config.model.code_dim <= 0:
    raise UserError(f"model.code_dim must be positive, got {config.model.code_dim}")
  if not 0.0 <= config.model.get("dropout", 0.0) < 1.0:
    raise UserError(f"model.dropout must be in [0, 1), got {config.model.dropout}")


def init_state(rng, config, example_batch) -> TrainState:
  x = example_batch["image"]
  nets.check_shape(x.shape[1:], len(config.model.features))
  module = _module(config, x.shape[1:])
  variables = module.init(rng, x[:1])
  return TrainState.create(apply_fn=module.apply, variables=variables, tx=make_tx(config.optim))


def train_step(state, batch, rng, *, loss: str = "mse", axis_name=None):
  """One Adam step on the mean reconstruction loss (`mse` on sigmoid outputs, or Bernoulli `bce`); dropout (when
  model.dropout > 0) draws its mask from fold_in(rng, step)."""
  rng = step_key(rng, state.step, axis_name)
  x = batch["image"]

  def loss_fn(params):
    logits, _ = state.apply_fn({"params": params}, x, train=True, rngs={"dropout": rng})
    per = reconstruction_terms(logits, x)
    return jnp.mean(per[loss]), per

  (value, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean({"loss": value, **nets.mean_over_batch(per)}, axis_name)


def eval_step(state, batch, rng):
  """Per-example `mse`, `bce` (nats) and `psnr` (dB, pixels in [0, 1]), each [B]."""
  del rng
  logits, _ = state.apply_fn(state.variables, batch["image"])
  per = reconstruction_terms(logits, batch["image"])
  per["psnr"] = psnr(per["mse"])
  return per


def encode(state, x):
  """The code h [B, code_dim] (dropout off)."""
  return state.apply_fn(state.variables, x, method=AutoEncoder.encode)


def decode(state, h):
  """Images in [0, 1] decoded from codes h [B, code_dim]."""
  return jax.nn.sigmoid(state.apply_fn(state.variables, h, method=AutoEncoder.decode))


def reconstruct(state, x):
  """x_hat in [0, 1] for inputs x in [0, 1] (dropout off)."""
  logits, _ = state.apply_fn(state.variables, x)
  return jax.nn.sigmoid(logits)


FAMILY = Family("ae", init_state, train_step, eval_step, validate, encode=encode, decode=decode,
                reconstruct=reconstruct, blocks=("reconstruction",))
