"""Conditional VAE (Sohn, Lee & Yan 2015; Kingma et al. 2014's M2 generative model with labels observed): the MLP
VAE of `vae_dense` with the one-hot label y concatenated to the encoder input [x, y] and the decoder input [z, y],
trained on -ELBO(x | y) = -log p(x | z, y) + beta * KL(q(z | x, y) || N(0, I)).

Without a label, `encode` and `reconstruct` use the label the model finds most likely, argmax_y ELBO(x | y) at the
posterior mean (a Bayes classifier under a uniform p(y)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import likelihood, vae_dense
from genjax.state import TrainState

latent_dim = vae_dense.latent_dim


def validate(config) -> None:
  vae_dense.validate(config)
  if config.model.num_classes < 2:
    raise UserError(f"model.num_classes must be >= 2, got {config.model.num_classes}")


def init_state(rng, config, example_batch) -> TrainState:
  y = jnp.zeros((1, config.model.num_classes), example_batch["image"].dtype)
  return vae_dense.init_state(rng, config, example_batch, cond=(y,))


def num_classes(state) -> int:
  """The one-hot width: the decoder's first layer sees [z, y]."""
  first = state.params["decoder"]["hidden_0" if "hidden_0" in state.params["decoder"] else "out"]
  return first["kernel"].shape[0] - latent_dim(state)


def one_hot(state, labels):
  return jax.nn.one_hot(labels, num_classes(state))


def train_step(state, batch, rng, *, beta: float = 1.0, axis_name=None):
  """One step on the mean of recon + beta * KL given the labels (nats per image; beta = 1: -ELBO(x | y))."""
  return vae_dense.elbo_step(state, batch, rng, beta, (one_hot(state, batch["label"]),), axis_name)


def class_scores(state, x):
  """ELBO(x | y) for every class at the posterior mean (no noise), [B, num_classes] in nats."""
  c = num_classes(state)
  b = x.shape[0]
  y = jnp.repeat(jax.nn.one_hot(jnp.arange(c), c), b, axis=0)  # row j * B + i: example i, class j
  x_c = jnp.tile(x, (c,) + (1,) * (x.ndim - 1))
  mean, logvar = state.apply_fn(state.variables, x_c, y, method="encode")
  logits = state.apply_fn(state.variables, mean, y, method="decode")
  elbo = -losses.bernoulli_nll(logits, x_c) - losses.gaussian_kl(mean, logvar)
  return elbo.reshape(c, b).T


def infer_labels(state, x):
  """argmax_y ELBO(x | y): the label under which the model explains x best, [B] int32."""
  return jnp.argmax(class_scores(state, x), axis=-1).astype(jnp.int32)


def eval_step(state, batch, rng):
  """Per-example single-sample `neg_elbo` = -ELBO(x | y), `recon`, `kl` (nats), and `label_accuracy` of
  argmax_y ELBO(x | y) against the true label; each [B]."""
  x, labels = batch["image"], batch["label"]
  per = vae_dense.eval_per_example(state, x, rng, (one_hot(state, labels),))
  per["label_accuracy"] = (infer_labels(state, x) == labels).astype(jnp.float32)
  return per


def encode(state, x, labels=None):
  """Mean and log-variance of q(z | x, y); without labels, y = `infer_labels(state, x)`."""
  labels = infer_labels(state, x) if labels is None else labels
  return vae_dense.encode(state, x, one_hot(state, labels))


def decode(state, z, labels=None):
  """Bernoulli means of p(x | z, y) in [0, 1]; without labels, y = arange(n) % num_classes as in `sample`."""
  labels = jnp.arange(z.shape[0]) % num_classes(state) if labels is None else labels
  return vae_dense.decode(state, z, one_hot(state, labels))


def sample_class(state, rng, labels):
  """One image in [0, 1] per entry of `labels` [n]: Bernoulli means of p(x | z, y), z ~ N(0, I)."""
  z = jax.random.normal(rng, (labels.shape[0], latent_dim(state)))
  return decode(state, z, labels)


def sample(state, rng, n: int):
  """n images with labels arange(n) % num_classes: in a grid num_classes wide, each column is one class."""
  return sample_class(state, rng, jnp.arange(n) % num_classes(state))


def reconstruct(state, x, labels=None):
  """Bernoulli means decoded from the posterior mean; without labels, y = `infer_labels(state, x)`."""
  labels = infer_labels(state, x) if labels is None else labels
  mean, _ = encode(state, x, labels)
  return decode(state, mean, labels)


def likelihood_bounds(state, x, labels, rng, k: int, *, chunk: int = 0):
  """(L_k, ELBO) of log p(x | y) per example, each [B] in nats: `likelihood.bounds` given the one-hot labels."""
  return likelihood.bounds(state, x, rng, k, chunk=chunk, cond=(one_hot(state, labels),))


FAMILY = vae_dense.FAMILY._replace(name="cvae", init_state=init_state, train_step=train_step, eval_step=eval_step,
                                   validate=validate, sample=sample, sample_class=sample_class,
                                   reconstruct=reconstruct, encode=encode, decode=decode,
                                   likelihood_bounds=likelihood_bounds,
                                   blocks=("generator", "conditional", "likelihood"))
