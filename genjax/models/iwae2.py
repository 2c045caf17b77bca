"""VAE and IWAE with two stochastic layers (Burda, Grosse & Salakhutdinov 2015, section 5.1):

  q(h1 | x) q(h2 | h1):  x -> hidden -> Gaussian h1 -> hidden_top -> Gaussian h2
  p(h2) p(h1 | h2) p(x | h1):  h2 ~ N(0, I) -> hidden_top reversed -> Gaussian h1 -> hidden reversed -> Bernoulli x

(the paper's MNIST model: hidden (200, 200), h1 of 100 units, hidden_top (100, 100), h2 of 50 units, tanh). Trained
on the k-sample bound L_k(x) = E[log (1/k) sum_i w_i] with

  log w = log p(x | h1) + log p(h1 | h2) + log p(h2) - log q(h1 | x) - log q(h2 | h1),  (h1, h2) ~ q,

whose k = 1 case is the VAE's ELBO, estimated by one sample (no KL term here is in closed form). Every Gaussian is
diagonal, its variance given as a log-variance. Draw i of an example is eps = normal(fold_in(rng, i)) of width
|h1| + |h2|, split into the two layers' noise, so bounds do not depend on how the k samples are chunked.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import iwae, likelihood
from genjax.models.family import Family
from genjax.models.vae_dense import ACTIVATIONS, MLP
from genjax.optim import make_tx
from genjax.state import TrainState

EVAL_K = 50  # samples of the importance-weighted bound that eval_step reports


class TwoLayerVAE(nn.Module):
  """Four MLPs with Gaussian (mean, log-variance) or Bernoulli-logit outputs: `q1` x -> h1, `q2` h1 -> h2, `p1`
  h2 -> h1, `px` h1 -> x. Inputs and latents are [B, ...]; images are flattened on the way in."""
  shape: tuple
  latents: tuple = (100, 50)
  hidden: tuple = (200, 200)
  hidden_top: tuple = (100, 100)
  activation: str = "tanh"

  def setup(self):
    d1, d2 = self.latents
    self.q1 = MLP(tuple(self.hidden), 2 * d1, self.activation)
    self.q2 = MLP(tuple(self.hidden_top), 2 * d2, self.activation)
    self.p1 = MLP(tuple(reversed(self.hidden_top)), 2 * d1, self.activation)
    self.px = MLP(tuple(reversed(self.hidden)), math.prod(self.shape), self.activation)

  def encode(self, x):
    """Mean and log-variance of q(h1 | x), each [B, |h1|]."""
    return jnp.split(self.q1(x.reshape(x.shape[0], -1)), 2, axis=-1)

  def encode_top(self, h1):
    """Mean and log-variance of q(h2 | h1), each [N, |h2|]."""
    return jnp.split(self.q2(h1), 2, axis=-1)

  def prior_h1(self, h2):
    """Mean and log-variance of p(h1 | h2), each [N, |h1|]."""
    return jnp.split(self.p1(h2), 2, axis=-1)

  def decode(self, h1):
    """Bernoulli logits of p(x | h1), [N, *shape]."""
    return self.px(h1).reshape(h1.shape[0], *self.shape)

  def __call__(self, x, h2):
    mean1, _ = self.encode(x)
    self.encode_top(mean1)
    return self.decode(self.prior_h1(h2)[0])


def validate(config) -> None:
  m = config.model
  if len(m.latents) != 2 or any(d <= 0 for d in m.latents):
    raise UserError(f"model.latents must be two positive sizes (|h1|, |h2|), got {tuple(m.latents)}")
  for key in ("hidden", "hidden_top"):
    if any(f <= 0 for f in m[key]):
      raise UserError(f"model.{key} must hold positive layer sizes, got {tuple(m[key])}")
  if m.activation not in ACTIVATIONS:
    raise UserError(f"model.activation must be one of {tuple(ACTIVATIONS)}, got '{m.activation}'")
  if config.step.k < 1:
    raise UserError(f"step.k must be >= 1 (importance samples per example), got {config.step.k}")


def init_state(rng, config, example_batch) -> TrainState:
  x = example_batch["image"]
  m = config.model
  module = TwoLayerVAE(tuple(x.shape[1:]), tuple(m.latents), tuple(m.hidden), tuple(m.hidden_top), m.activation)
  variables = module.init(rng, x[:1], jnp.zeros((1, m.latents[1]), x.dtype))
  return TrainState.create(apply_fn=module.apply, variables=variables, tx=make_tx(config.optim))


def latent_dims(params) -> tuple[int, int]:
  """(|h1|, |h2|), from the output layers of q1 and q2."""
  return params["q1"]["out"]["kernel"].shape[-1] // 2, params["q2"]["out"]["kernel"].shape[-1] // 2


def _normal_log_density(h, mean, logvar):
  """log N(h; mean, exp(logvar)) summed over the last axis."""
  return -0.5 * jnp.sum((h - mean) ** 2 * jnp.exp(-logvar) + logvar + likelihood.LOG_2PI, axis=-1)


def log_weights(apply_fn, variables, x, mean1, logvar1, eps_KxBxD):
  """log w [K, B] of the draws eps [K, B, |h1| + |h2|]: h1 = mean1 + sigma1 * eps[..., :|h1|] (q(h1 | x) given as
  mean1, logvar1 [B, |h1|]), h2 from q(h2 | h1) with the rest of eps."""
  k, b, _ = eps_KxBxD.shape
  d1 = mean1.shape[-1]
  eps1, eps2 = eps_KxBxD[..., :d1].reshape(k * b, d1), eps_KxBxD[..., d1:].reshape(k * b, -1)
  mean1, logvar1 = jnp.tile(mean1, (k, 1)), jnp.tile(logvar1, (k, 1))  # row i * B + j: draw i of example j
  h1 = mean1 + jnp.exp(0.5 * logvar1) * eps1
  mean2, logvar2 = apply_fn(variables, h1, method="encode_top")
  h2 = mean2 + jnp.exp(0.5 * logvar2) * eps2
  prior_mean1, prior_logvar1 = apply_fn(variables, h2, method="prior_h1")
  logits = apply_fn(variables, h1, method="decode").reshape(k, *x.shape)
  log_px = -jax.vmap(losses.bernoulli_nll, in_axes=(0, None))(logits, x)
  log_p = (likelihood.gaussian_log_density(h2, jnp.zeros_like(logvar2))
           + _normal_log_density(h1, prior_mean1, prior_logvar1))
  log_q = likelihood.gaussian_log_density(eps1, logvar1) + likelihood.gaussian_log_density(eps2, logvar2)
  return log_px + (log_p - log_q).reshape(k, b)


def _noise(rng, indices_K, batch: int, params):
  return likelihood.noise(rng, indices_K, (batch, sum(latent_dims(params))))


def bounds(state, x, rng, k: int, *, chunk: int = 0, params=None):
  """(L_k, ELBO) per example, each [B] in nats, from the same k draws (`likelihood.chunked_bounds`)."""
  params = state.params if params is None else params
  variables = {"params": params}
  mean1, logvar1 = state.apply_fn(variables, x, method="encode")
  return likelihood.chunked_bounds(
      lambda idx: log_weights(state.apply_fn, variables, x, mean1, logvar1, _noise(rng, idx, x.shape[0], params)),
      k, chunk, x.shape[0], mean1.dtype)


def train_step(state, batch, rng, *, k: int = 5, binarize: bool = False, axis_name=None):
  """One Adam step on -mean L_k, reparameterized through both layers (`iwae.bound_step` with `bounds`)."""
  return iwae.bound_step(state, batch, rng, bounds, k, binarize, axis_name)


def eval_step(state, batch, rng):
  """Per-example `neg_elbo` (one draw) and `neg_iwae` = -L_50 (one draw of 50 samples), nats, each [B]."""
  k_elbo, k_iwae = jax.random.split(rng)
  x = batch["image"]
  return {"neg_elbo": -bounds(state, x, k_elbo, 1)[1], "neg_iwae": -bounds(state, x, k_iwae, EVAL_K)[0]}


def likelihood_bounds(state, x, labels, rng, k: int, *, chunk: int = 0):
  del labels
  return bounds(state, x, rng, k, chunk=chunk)


def encode(state, x):
  """The mean of q(h2 | h1) at the mean of q(h1 | x): codes [B, |h2|]."""
  mean1, _ = state.apply_fn(state.variables, x, method="encode")
  return state.apply_fn(state.variables, mean1, method="encode_top")[0]


def decode(state, h2):
  """Bernoulli means in [0, 1] of p(x | h1) at h1 = the mean of p(h1 | h2), [B, H, W, C]."""
  h1 = state.apply_fn(state.variables, h2, method="prior_h1")[0]
  return jax.nn.sigmoid(state.apply_fn(state.variables, h1, method="decode"))


def sample(state, rng, n: int):
  """n images in [0, 1] by ancestral sampling: h2 ~ N(0, I), h1 ~ p(h1 | h2), then the Bernoulli means of
  p(x | h1)."""
  d1, d2 = latent_dims(state.params)
  k2, k1 = jax.random.split(rng)
  mean1, logvar1 = state.apply_fn(state.variables, jax.random.normal(k2, (n, d2)), method="prior_h1")
  h1 = mean1 + jnp.exp(0.5 * logvar1) * jax.random.normal(k1, (n, d1))
  return jax.nn.sigmoid(state.apply_fn(state.variables, h1, method="decode"))


def reconstruct(state, x):
  """Bernoulli means of p(x | h1) at the mean of q(h1 | x)."""
  mean1, _ = state.apply_fn(state.variables, x, method="encode")
  return jax.nn.sigmoid(state.apply_fn(state.variables, mean1, method="decode"))


FAMILY = Family("iwae2", init_state, train_step, eval_step, validate, sample=sample, reconstruct=reconstruct,
                encode=encode, decode=decode, likelihood_bounds=likelihood_bounds, blocks=("generator", "likelihood"))
