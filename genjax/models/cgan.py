"""Conditional GAN (Mirza & Osindero 2014): MLP generator and discriminator that read the one-hot label at every
layer, G(z, y) and D(x, y). Same losses and mode-collapse remedies as `gan`; `sample` cycles through the classes so a
grid of num_classes columns shows one class per column; `sample_class` draws the given labels."""

from __future__ import annotations

import jax.numpy as jnp

from genjax.errors import UserError
from genjax.models import gan_mlp, gans


def validate(config) -> None:
  gans.validate_common(config)
  if config.model.num_classes < 2:
    raise UserError(f"model.num_classes must be at least 2, got {config.model.num_classes}")


def init_state(rng, config, example_batch) -> gans.AdversarialState:
  return gans.init_mlp_state(rng, config, example_batch, config.model.num_classes)


def sample_class(state: gans.AdversarialState, rng, labels):
  """One image in [0, 1] per label in `labels` [n]."""
  labels = jnp.asarray(labels, jnp.int32)
  return (gans.generate(state, rng, labels.shape[0], labels) + 1.0) * 0.5


FAMILY = gan_mlp.FAMILY._replace(name="cgan", init_state=init_state, validate=validate, sample_class=sample_class,
                                 blocks=("generator", "conditional"))
