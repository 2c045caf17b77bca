"""The original GAN (Goodfellow et al. 2014) with MLP players: G is z -> ReLU layers -> tanh image, D is a
LeakyReLU MLP with optional dropout. Same losses and mode-collapse remedies as `gan`; the base of the MLP GAN
families `wgan`, `wgan_gp` and `cgan`."""

from __future__ import annotations

from genjax.models import gans
from genjax.models.family import Family

FAMILY = Family("gan_mlp", gans.init_mlp_state, gans.adversarial_train_step, gans.eval_step, gans.validate_common,
                examples_per_step=gans.examples_per_step, sample=gans.sample,
                raw_generator=gans.raw_generator, blocks=("generator",))
