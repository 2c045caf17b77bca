"""Dense one-hidden-layer autoencoder: code h = s(W x + b), reconstruction x_hat = sigmoid(W' h + b').

The dense autoencoder families (`ae_linear`, `sparse_ae`, `dae`) are derived from FAMILY here and share its
helpers. With `model.activation = "sigmoid"` (the default) this is the textbook formulation x_hat = s(W' s(W x + b)
+ b'); the output stays a sigmoid for every code activation so that reconstructions lie in [0, 1].
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import nets
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key

RECONSTRUCTION_LOSSES = ("mse", "bce")
ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh, "linear": lambda a: a}


class DenseAutoEncoder(nn.Module):
  """x [B, H, W, C] -> code h = s(W dropout(x) + b) [B, code_dim] -> pre-activation W' h + b' [B, H, W, C].

  Dropout acts on the input of the code layer (here the pixels), only when `train` is true; the caller applies
  the output nonlinearity (sigmoid, or none for the linear autoencoder).
  """
  shape: tuple
  code_dim: int = 32
  activation: str = "sigmoid"
  dropout: float = 0.0

  def setup(self):
    self.drop = nn.Dropout(self.dropout)
    self.encoder = nets.Dense(self.code_dim)
    self.decoder = nets.Dense(math.prod(self.shape))

  def encode(self, x, train: bool = False):
    x_BxD = x.reshape(x.shape[0], -1)
    return ACTIVATIONS[self.activation](self.encoder(self.drop(x_BxD, deterministic=not train)))

  def decode(self, h_BxK):
    return self.decoder(h_BxK).reshape(h_BxK.shape[0], *self.shape)

  def __call__(self, x, train: bool = False):
    h = self.encode(x, train)
    return self.decode(h), h


def module(config, shape, activation: str | None = None) -> DenseAutoEncoder:
  m = config.model
  return DenseAutoEncoder(tuple(shape), m.code_dim, activation or m.activation, m.get("dropout", 0.0))


def validate_common(config) -> None:
  """Checks the keys every dense autoencoder has: code_dim, dropout and, when present, activation and loss."""
  m = config.model
  if m.code_dim <= 0:
    raise UserError(f"model.code_dim must be positive, got {m.code_dim}")
  if not 0.0 <= m.get("dropout", 0.0) < 1.0:
    raise UserError(f"model.dropout must be in [0, 1), got {m.dropout}")
  if "activation" in m and m.activation not in ACTIVATIONS:
    raise UserError(f"model.activation must be one of {tuple(ACTIVATIONS)}, got '{m.activation}'")
  if "loss" in config.step and config.step.loss not in RECONSTRUCTION_LOSSES:
    raise UserError(f"step.loss must be one of {RECONSTRUCTION_LOSSES}, got '{config.step.loss}'")


def validate(config) -> None:
  validate_common(config)


def init_state(rng, config, example_batch, activation: str | None = None) -> TrainState:
  x = example_batch["image"]
  m = module(config, x.shape[1:], activation)
  variables = m.init(rng, x[:1])
  return TrainState.create(apply_fn=m.apply, variables=variables, tx=make_tx(config.optim))


def reconstruction_terms(logits, x, terms=RECONSTRUCTION_LOSSES):
  """Per-example `mse` = mean_i (sigmoid(l_i) - x_i)^2 and `bce` = -log Bernoulli(x | logits) in nats, each [B]; those
  named in `terms`."""
  fns = {"mse": lambda: losses.squared_error(jax.nn.sigmoid(logits), x), "bce": lambda: losses.bernoulli_nll(logits, x)}
  return {t: fns[t]() for t in terms}


def psnr(mse):
  """Peak signal-to-noise ratio in dB for pixels in [0, 1]: -10 log10(mse)."""
  return -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))


def forward(state, params, x, rng=None):
  """(logits, code) of the network; dropout is active exactly when `rng` is given (training)."""
  if rng is None:
    return state.apply_fn({"params": params}, x)
  return state.apply_fn({"params": params}, x, train=True, rngs={"dropout": rng})


def train_step(state, batch, rng, *, loss: str = "mse", axis_name=None):
  """One Adam step on the batch mean of the reconstruction loss: `mse` = mean_i (x_hat_i - x_i)^2 with
  x_hat = sigmoid(W' h + b'), or `bce` = sum_i -[x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)].

  The metrics are `loss` and the term under its own name; the other term is eval_step's, since computing both
  every step slows this small model markedly (docs/kernels.md, design choices)."""
  x = batch["image"]
  rng = step_key(rng, state.step, axis_name)

  def loss_fn(params):
    logits, _ = forward(state, params, x, rng)
    per = reconstruction_terms(logits, x, (loss,))
    return jnp.mean(per[loss]), per

  (value, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean({"loss": value, **{k: jnp.mean(v) for k, v in per.items()}}, axis_name)


def eval_step(state, batch, rng):
  """Per-example `mse`, `bce` (nats) and `psnr` (dB, pixels in [0, 1]), each [B]; dropout is off."""
  del rng
  logits, _ = forward(state, state.params, batch["image"])
  per = reconstruction_terms(logits, batch["image"])
  per["psnr"] = psnr(per["mse"])
  return per


def encode(state, x):
  """The code h [B, code_dim] of images x in [0, 1] (dropout off)."""
  return state.apply_fn(state.variables, x, method=DenseAutoEncoder.encode)


def decode(state, h):
  """Images in [0, 1] [B, H, W, C] decoded from codes h."""
  return jax.nn.sigmoid(state.apply_fn(state.variables, h, method=DenseAutoEncoder.decode))


def reconstruct(state, x):
  """x_hat in [0, 1] for inputs x in [0, 1] (dropout off)."""
  logits, _ = state.apply_fn(state.variables, x)
  return jax.nn.sigmoid(logits)


FAMILY = Family("ae_dense", init_state, train_step, eval_step, validate, encode=encode, decode=decode,
                reconstruct=reconstruct, blocks=("reconstruction",))
