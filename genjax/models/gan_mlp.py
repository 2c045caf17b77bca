"""The original GAN (Goodfellow et al. 2014) with MLP players: G is z -> ReLU layers -> tanh image, D is a
LeakyReLU MLP with optional dropout. Same losses and mode-collapse remedies as `gan`; dense, so the loop scans
16 steps per dispatch."""

from __future__ import annotations

from genjax.models import gans


def validate(config) -> None:
  gans.validate_common(config)


def examples_per_step(config) -> int:
  return gans.examples_per_step(config, "d_steps")


def init_state(rng, config, example_batch) -> gans.AdversarialState:
  return gans.init_mlp_state(rng, config, example_batch)


train_step = gans.adversarial_train_step


eval_step = gans.eval_step
generate = gans.generate
sample = gans.sample
