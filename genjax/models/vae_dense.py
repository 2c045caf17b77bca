"""MLP VAE of Kingma & Welling (2013): x -> hidden -> (mean, log-variance) of q(z | x) -> hidden -> Bernoulli
logits of p(x | z), with z = mean + sigma * eps and the KL to N(0, I) in closed form.

The families `cvae` (a one-hot label joins the encoder's and the decoder's input) and `iwae` (the same network
trained on the importance-weighted bound) are derived from FAMILY here; the helpers below work for any of this
repo's Gaussian-latent, Bernoulli-likelihood VAE states whose module has `encode(x, *cond) -> (mean, logvar)` and
`decode(z, *cond) -> logits`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import likelihood, nets
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}


class MLP(nn.Module):
  """Dense layers `hidden_i` with the activation, then a linear layer `out`."""
  hidden: tuple
  out_dim: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, h):
    act = ACTIVATIONS[self.activation]
    for i, f in enumerate(self.hidden):
      h = act(nets.Dense(f, name=f"hidden_{i}")(h))
    return nets.Dense(self.out_dim, name="out")(h)


class DenseVAE(nn.Module):
  """Flattened x (and an optional condition, e.g. a one-hot label) -> MLP -> 2 * latent_dim; the decoder mirrors
  the hidden sizes and returns logits of the image shape."""
  shape: tuple
  latent_dim: int = 20
  hidden: tuple = (400,)
  activation: str = "relu"

  def setup(self):
    self.encoder = MLP(tuple(self.hidden), 2 * self.latent_dim, self.activation)
    self.decoder = MLP(tuple(reversed(self.hidden)), math.prod(self.shape), self.activation)

  def encode(self, x, *cond):
    """Mean and log-variance of q(z | x, cond)."""
    h = jnp.concatenate([x.reshape(x.shape[0], -1), *cond], axis=-1)
    mean, logvar = jnp.split(self.encoder(h), 2, axis=-1)
    return mean, logvar

  def decode(self, z, *cond):
    """Bernoulli logits of p(x | z, cond), shape [B, *shape]."""
    logits = self.decoder(jnp.concatenate([z, *cond], axis=-1))
    return logits.reshape(z.shape[0], *self.shape)

  def __call__(self, x, eps, *cond):
    mean, logvar = self.encode(x, *cond)
    z = mean + jnp.exp(0.5 * logvar) * eps  # reparameterization: the noise carries no parameters
    return self.decode(z, *cond), mean, logvar


def validate(config) -> None:
  m = config.model
  if config.step.get("beta", 1.0) < 0:
    raise UserError(f"step.beta must be >= 0, got {config.step.beta}")
  if m.latent_dim <= 0:
    raise UserError(f"model.latent_dim must be positive, got {m.latent_dim}")
  if any(f <= 0 for f in m.hidden):
    raise UserError(f"model.hidden must hold positive layer sizes, got {tuple(m.hidden)}")
  if m.activation not in ACTIVATIONS:
    raise UserError(f"model.activation must be one of {tuple(ACTIVATIONS)}, got '{m.activation}'")


def make_module(config, shape) -> DenseVAE:
  m = config.model
  return DenseVAE(tuple(shape), m.latent_dim, tuple(m.hidden), m.activation)


def init_state(rng, config, example_batch, cond=()) -> TrainState:
  """`cond`: example condition arrays ([1, C] each) for conditional variants."""
  x = example_batch["image"]
  module = make_module(config, x.shape[1:])
  variables = module.init(rng, x[:1], jnp.zeros((1, config.model.latent_dim), x.dtype), *cond)
  return TrainState.create(apply_fn=module.apply, variables=variables, tx=make_tx(config.optim))


def latent_dim(state) -> int:
  """From the encoder's output layer, named `out` in both the dense and the conv encoder."""
  return state.params["encoder"]["out"]["kernel"].shape[-1] // 2


def elbo_terms(state, params, x, eps, cond=()):
  """Single-sample `recon` = -log p(x | z) at z = mean + sigma * eps and the analytic `kl`, each [B] in nats."""
  logits, mean, logvar = state.apply_fn({"params": params}, x, eps, *cond)
  return {"recon": losses.bernoulli_nll(logits, x), "kl": losses.gaussian_kl(mean, logvar)}


def dynamic_binarization(rng, x):
  """x's pixels drawn anew as Bernoulli(grey level), 0 or 1 (Burda et al.'s dynamic binarization): the step's own
  key, folded apart from its other draws, so a step draws the same pixels after a resume and other steps others."""
  return (jax.random.uniform(jax.random.fold_in(rng, 0x62696E), x.shape) < x).astype(x.dtype)


def elbo_step(state, batch, rng, beta, cond, axis_name, binarize: bool = False):
  """One Adam step on the mean of recon + beta * KL; shared by `vae_dense` and `cvae`."""
  rng = step_key(rng, state.step, axis_name)
  x = dynamic_binarization(rng, batch["image"]) if binarize else batch["image"]
  eps = jax.random.normal(rng, (x.shape[0], latent_dim(state)), x.dtype)

  def loss_fn(params):
    per = elbo_terms(state, params, x, eps, cond)
    per = {"neg_elbo": per["recon"] + per["kl"], "loss": per["recon"] + beta * per["kl"], **per}
    return jnp.mean(per["loss"]), per

  (_, per), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean(nets.mean_over_batch(per), axis_name)


def train_step(state, batch, rng, *, beta: float = 1.0, binarize: bool = False, axis_name=None):
  """One step on the mean of recon + beta * KL (nats per image; beta = 1 gives the negative ELBO); with `binarize`,
  on the batch's dynamic binarization (`dynamic_binarization`)."""
  return elbo_step(state, batch, rng, beta, (), axis_name, binarize)


def eval_per_example(state, x, rng, cond=()):
  eps = jax.random.normal(rng, (x.shape[0], latent_dim(state)), x.dtype)
  per = elbo_terms(state, state.params, x, eps, cond)
  return {"neg_elbo": per["recon"] + per["kl"], **per}


def eval_step(state, batch, rng):
  """Per-example single-sample `neg_elbo`, `recon` and `kl` in nats, each [B]."""
  return eval_per_example(state, batch["image"], rng)


def encode(state, x, *cond):
  """Mean and log-variance of q(z | x), each [B, latent_dim]."""
  return state.apply_fn(state.variables, x, *cond, method="encode")


def decode(state, z, *cond):
  """Bernoulli means of p(x | z) in [0, 1], [B, H, W, C]."""
  return jax.nn.sigmoid(state.apply_fn(state.variables, z, *cond, method="decode"))


def sample(state, rng, n: int):
  """n images in [0, 1]: the Bernoulli means of p(x | z), z ~ N(0, I)."""
  return decode(state, jax.random.normal(rng, (n, latent_dim(state))))


def reconstruct(state, x):
  """Bernoulli means decoded from the posterior mean."""
  return decode(state, encode(state, x)[0])


FAMILY = Family("vae_dense", init_state, train_step, eval_step, validate, sample=sample, reconstruct=reconstruct,
                encode=encode, decode=decode, likelihood_bounds=likelihood.family_bounds,
                blocks=("generator", "likelihood"))
