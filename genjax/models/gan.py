"""DCGAN: upsampling conv generator with BatchNorm, conv discriminator with LeakyReLU.

The mode-collapse remedies of `genjax.models.gans` are options: `optim.lr_g` / `optim.lr_d`, `step.d_steps`,
`step.feature_matching`, `step.historical_averaging`, `model.minibatch_std`, `model.latent_dist`.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from genjax.models import gans, nets
from genjax.models.family import Family


class Generator(nn.Module):
  """z -> dense -> [H/4, W/4, f0] -> 2x up (f1) -> 2x up (C) -> tanh, with BatchNorm + ReLU in between."""
  shape: tuple
  features: tuple = (128, 64)
  upsample: str = "transpose"

  @nn.compact
  def __call__(self, z_BxD, y_B=None, train: bool = True, axis_name=None):
    del y_B  # unconditional
    h_out, w_out, c = self.shape
    s = 2 ** len(self.features)
    # axis_name: under shard_map/pmap, batch statistics of the global batch, as one device would compute them.
    def bn():
      return nets.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=axis_name)
    # No bias before BatchNorm: BN cancels it, and Adam would turn its zero gradient's rounding noise into steps.
    h = nets.Dense((h_out // s) * (w_out // s) * self.features[0], use_bias=False, name="project")(z_BxD)
    h = nn.relu(bn()(h)).reshape(z_BxD.shape[0], h_out // s, w_out // s, self.features[0])
    for f in self.features[1:]:
      h = nn.relu(bn()(nets.Upsample2x(f, self.upsample, use_bias=False)(h)))
    return jnp.tanh(nets.Upsample2x(c, self.upsample)(h))


class ConvTrunk(nn.Module):
  """Stride-2 4x4 convs with LeakyReLU(0.2) [-> minibatch stddev map] -> dense to one logit; returns
  (logits [B], the flattened conv features [B, F])."""
  features: tuple = (64, 128)
  minibatch_std: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC):
    h = x_BxHxWxC
    for f in self.features:
      h = nn.leaky_relu(nets.Conv(f, (4, 4), strides=(2, 2))(h), 0.2)
    features = h.reshape(h.shape[0], -1)
    if self.minibatch_std:
      h = gans.minibatch_stddev(h)
    return nets.Dense(1, name="out")(h.reshape(h.shape[0], -1))[:, 0], features


class Discriminator(nn.Module):
  """Stride-2 convs with LeakyReLU(0.2), then one logit per image; returns (logits [B], features [B, F])."""
  features: tuple = (64, 128)
  minibatch_std: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC, y_B=None, train: bool = False):
    del y_B, train  # unconditional, no dropout
    # Named as nets.ConvEncoder was before: same parameter tree and initialization as earlier checkpoints.
    return ConvTrunk(self.features, self.minibatch_std, name="ConvEncoder_0")(x_BxHxWxC)


def init_state(rng, config, example_batch) -> gans.AdversarialState:
  x = example_batch["image"]
  m = config.model
  nets.check_shape(x.shape[1:], len(m.gen_features))
  spec = gans.spec_of(config)
  gen = Generator(tuple(x.shape[1:]), tuple(m.gen_features), m.upsample)
  disc = Discriminator(tuple(m.disc_features), spec.minibatch_std)
  return gans.make_state(rng, config, gen, disc, x, spec)


FAMILY = Family("gan", init_state, gans.adversarial_train_step, gans.eval_step, gans.validate_common,
                examples_per_step=gans.examples_per_step, sample=gans.sample, decode=gans.decode,
                raw_generator=gans.raw_generator, blocks=("generator",))
