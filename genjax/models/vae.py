"""Convolutional VAE: Bernoulli likelihood, z = mu + sigma * eps, analytic KL to N(0, I)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import likelihood, nets
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key


class VAE(nn.Module):
  shape: tuple
  latent_dim: int = 16
  features: tuple = (32, 64)
  upsample: str = "transpose"

  def setup(self):
    self.encoder = nets.ConvEncoder(2 * self.latent_dim, self.features)
    self.decoder = nets.ConvDecoder(self.shape, tuple(reversed(self.features)), self.upsample)

  def encode(self, x):
    """Returns the mean and log-variance of q(z | x)."""
    mean, logvar = jnp.split(self.encoder(x), 2, axis=-1)
    return mean, logvar

  def decode(self, z):
    """Bernoulli logits of p(x | z)."""
    return self.decoder(z)

  def __call__(self, x, eps):
    mean, logvar = self.encode(x)
    z = mean + jnp.exp(0.5 * logvar) * eps  # reparameterization: the noise carries no parameters
    return self.decode(z), mean, logvar


def validate(config) -> None:
  if config.step.beta < 0:
    raise UserError(f"step.beta must be >= 0, got {config.step.beta}")
  if config.model.latent_dim <= 0:
    raise UserError(f"model.latent_dim must be positive, got {config.model.latent_dim}")


def init_state(rng, config, example_batch) -> TrainState:
  x = example_batch["image"]
  m = config.model
  nets.check_shape(x.shape[1:], len(m.features))
  module = VAE(tuple(x.shape[1:]), m.latent_dim, tuple(m.features), m.upsample)
  variables = module.init(rng, x[:1], jnp.zeros((1, m.latent_dim), x.dtype))
  return TrainState.create(apply_fn=module.apply, variables=variables, tx=make_tx(config.optim))


def latent_dim(state) -> int:
  return state.params["decoder"]["project"]["kernel"].shape[0]


def _per_example(state, params, x, rng, beta):
  eps = jax.random.normal(rng, (x.shape[0], latent_dim(state)), x.dtype)
  logits, mean, logvar = state.apply_fn({"params": params}, x, eps)
  recon = losses.bernoulli_nll(logits, x)
  kl = losses.gaussian_kl(mean, logvar)
  return {"neg_elbo": recon + kl, "loss": recon + beta * kl, "recon": recon, "kl": kl}


def train_step(state, batch, rng, *, beta: float = 1.0, axis_name=None):
  """One step on the mean of recon + beta * KL (nats per image; beta = 1 gives the negative ELBO)."""
  rng = step_key(rng, state.step, axis_name)

  def loss_fn(params):
    per = _per_example(state, params, batch["image"], rng, beta)
    return jnp.mean(per["loss"]), per

  (_, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean(nets.mean_over_batch(per), axis_name)


def eval_step(state, batch, rng):
  """Per-example single-sample `neg_elbo`, `recon` and `kl` in nats, each [B]."""
  per = _per_example(state, state.params, batch["image"], rng, 1.0)
  del per["loss"]
  return per


def sample(state, rng, n: int):
  """n images in [0, 1]: the Bernoulli means of p(x | z), z ~ N(0, I)."""
  z = jax.random.normal(rng, (n, latent_dim(state)))
  return jax.nn.sigmoid(state.apply_fn(state.variables, z, method=VAE.decode))


def encode(state, x):
  """Mean and log-variance of q(z | x), each [B, latent_dim]."""
  return state.apply_fn(state.variables, x, method=VAE.encode)


def decode(state, z):
  """Bernoulli means of p(x | z) in [0, 1], [B, H, W, C]."""
  return jax.nn.sigmoid(state.apply_fn(state.variables, z, method=VAE.decode))


def reconstruct(state, x):
  """Bernoulli means decoded from the posterior mean."""
  mean, _ = encode(state, x)
  return jax.nn.sigmoid(state.apply_fn(state.variables, mean, method=VAE.decode))


FAMILY = Family("vae", init_state, train_step, eval_step, validate, sample=sample, reconstruct=reconstruct,
                encode=encode, decode=decode, likelihood_bounds=likelihood.family_bounds,
                blocks=("generator", "likelihood"))
