"""DCGAN: upsampling conv generator with BatchNorm, conv discriminator with LeakyReLU."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import losses
from genjax.errors import UserError
from genjax.models import nets
from genjax.optim import make_tx
from genjax.state import GANState, TrainState, pmean

CONV = True


class Generator(nn.Module):
  """z -> dense -> [H/4, W/4, f0] -> 2x up (f1) -> 2x up (C) -> tanh, with BatchNorm + ReLU in between."""
  shape: tuple
  features: tuple = (128, 64)
  upsample: str = "transpose"

  @nn.compact
  def __call__(self, z_BxD, train: bool = True):
    h_out, w_out, c = self.shape
    s = 2 ** len(self.features)
    bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
    # No bias before BatchNorm: BN cancels it, and Adam would turn its zero gradient's rounding noise into steps.
    h = nn.Dense((h_out // s) * (w_out // s) * self.features[0], use_bias=False, name="project")(z_BxD)
    h = nn.relu(bn()(h)).reshape(z_BxD.shape[0], h_out // s, w_out // s, self.features[0])
    for f in self.features[1:]:
      h = nn.relu(bn()(nets.Upsample2x(f, self.upsample, use_bias=False)(h)))
    return jnp.tanh(nets.Upsample2x(c, self.upsample)(h))


class Discriminator(nn.Module):
  """Stride-2 convs with LeakyReLU(0.2), then one logit per image."""
  features: tuple = (64, 128)

  @nn.compact
  def __call__(self, x_BxHxWxC):
    return nets.ConvEncoder(1, self.features)(x_BxHxWxC)[:, 0]


def validate(config) -> None:
  if config.step.loss not in losses.GAN_LOSSES:
    raise UserError(f"step.loss must be one of {losses.GAN_LOSSES}, got '{config.step.loss}'")
  if config.model.latent_dim <= 0:
    raise UserError(f"model.latent_dim must be positive, got {config.model.latent_dim}")


def init_state(rng, config, example_batch) -> GANState:
  x = example_batch["image"]
  m = config.model
  nets.check_shape(x.shape[1:], len(m.gen_features))
  gen = Generator(tuple(x.shape[1:]), tuple(m.gen_features), m.upsample)
  disc = Discriminator(tuple(m.disc_features))
  k_g, k_d = jax.random.split(rng)
  g_vars = gen.init(k_g, jnp.zeros((1, m.latent_dim), x.dtype), train=False)
  d_vars = disc.init(k_d, x[:1])
  return GANState(step=jnp.zeros((), jnp.int32),
                  gen=TrainState.create(apply_fn=gen.apply, variables=g_vars, tx=make_tx(config.optim)),
                  disc=TrainState.create(apply_fn=disc.apply, variables=d_vars, tx=make_tx(config.optim)))


def latent_dim(state: GANState) -> int:
  return state.gen.params["project"]["kernel"].shape[0]


def _generate(gen: TrainState, params, z):
  """G(z) in training mode: BatchNorm uses batch statistics and returns updated running averages."""
  x, updates = gen.apply_fn({"params": params, "batch_stats": gen.batch_stats}, z, train=True,
                            mutable=["batch_stats"])
  return x, updates["batch_stats"]


def train_step(state: GANState, batch, rng, *, loss: str = "non_saturating", axis_name=None):
  """One discriminator update on real and generated images, then one generator update against the new D."""
  rng = jax.random.fold_in(rng, state.step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  k_d, k_g = jax.random.split(rng)
  x = batch["image"] * 2.0 - 1.0  # the generator's tanh range
  b, dz = x.shape[0], latent_dim(state)
  gen, disc = state.gen, state.disc

  fake, _ = _generate(gen, gen.params, jax.random.normal(k_d, (b, dz), x.dtype))
  fake = jax.lax.stop_gradient(fake)

  def d_loss_fn(params):
    # D has no BatchNorm, so one call on real and fake together equals two separate calls.
    logits = disc.apply_fn({"params": params}, jnp.concatenate([x, fake]))
    real_logits, fake_logits = logits[:b], logits[b:]
    return jnp.mean(losses.discriminator_loss(real_logits, fake_logits, loss)), (real_logits, fake_logits)

  (d_loss, (real_logits, fake_logits)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(disc.params)
  disc = disc.apply_gradients(pmean(d_grads, axis_name))

  def g_loss_fn(params):
    fake, batch_stats = _generate(gen, params, jax.random.normal(k_g, (b, dz), x.dtype))
    logits = disc.apply_fn({"params": disc.params}, fake)
    return jnp.mean(losses.generator_loss(logits, loss)), batch_stats

  (g_loss, batch_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(gen.params)
  gen = gen.apply_gradients(pmean(g_grads, axis_name), batch_stats=pmean(batch_stats, axis_name))

  metrics = {"d_loss": d_loss, "g_loss": g_loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
             "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
  return state.replace(step=state.step + 1, gen=gen, disc=disc), pmean(metrics, axis_name)


def eval_step(state: GANState, batch, rng):
  """Per-example D and G losses and D's probabilities on real and on generated images, each [B]."""
  x = batch["image"] * 2.0 - 1.0
  fake = generate(state, rng, x.shape[0])
  real_logits = state.disc.apply_fn(state.disc.variables, x)
  fake_logits = state.disc.apply_fn(state.disc.variables, fake)
  return {"d_loss": losses.discriminator_loss(real_logits, fake_logits),
          "g_loss": losses.generator_loss(fake_logits), "d_real": jax.nn.sigmoid(real_logits),
          "d_fake": jax.nn.sigmoid(fake_logits)}


def generate(state: GANState, rng, n: int):
  """n images in [-1, 1] from z ~ N(0, I), BatchNorm on running averages."""
  z = jax.random.normal(rng, (n, latent_dim(state)))
  return state.gen.apply_fn(state.gen.variables, z, train=False)


def sample(state: GANState, rng, n: int):
  """n images in [0, 1]."""
  return (generate(state, rng, n) + 1.0) * 0.5
