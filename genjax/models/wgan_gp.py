"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic kept near 1-Lipschitz by a gradient penalty.

Critic loss: E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z) with
eps ~ U[0, 1] per example and the norm per example over (H, W, C) (`losses.gradient_penalty`); lambda is
`step.gp_weight`. The critic has no BatchNorm and no minibatch statistics, which would make the per-example
gradient meaningless. MLP players; the paper's Adam(1e-4, b1=0.5, b2=0.9) (the default config: lr 4e-4) and 5
critic updates per generator update.
"""

from __future__ import annotations

from genjax.errors import UserError
from genjax.models import gans, wgan


def validate(config) -> None:
  gans.validate_common(config)
  if config.model.get("minibatch_std", False):
    raise UserError("wgan_gp's critic must score each example on its own: model.minibatch_std must be False")


def train_step(state: gans.AdversarialState, batch, rng, *, n_critic: int = 5, gp_weight: float = 10.0,
               ema_decay: float = 0.0, ema_start: int = 0, axis_name=None):
  """`n_critic` penalized critic updates on distinct real minibatches, then one generator update (and its EMA)."""
  return gans.train_step(state, batch, rng, loss="wasserstein", d_steps=n_critic, gp_weight=gp_weight,
                         ema_decay=ema_decay, ema_start=ema_start, axis_name=axis_name)


FAMILY = wgan.FAMILY._replace(name="wgan_gp", validate=validate, train_step=train_step)
