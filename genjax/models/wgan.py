"""Wasserstein GAN with weight clipping (Arjovsky et al. 2017), MLP generator and critic.

The critic maximizes E[D(x)] - E[D(G(z))] with its weights clipped to [-c, c] after every update, `n_critic`
updates (each on its own real minibatch) per generator update; the generator minimizes -E[D(G(z))]. The paper's
optimizer is RMSProp at 5e-5 (optim.name = "rmsprop"; the default config: 2e-4). Not done here: the paper's 100
critic updates for the first 25 generator updates and every 500th.
"""

from __future__ import annotations

import functools

from genjax.models import gan_mlp, gans


def train_step(state: gans.AdversarialState, batch, rng, *, n_critic: int = 5, clip: float = 0.01,
               ema_decay: float = 0.0, ema_start: int = 0, axis_name=None):
  """`n_critic` clipped critic updates on distinct real minibatches, then one generator update (and its EMA). The
  keyword defaults are the paper's (clip 0.01); the training loop passes the config's `step` keys (clip 0.05 in
  genjax/configs/wgan.py)."""
  return gans.train_step(state, batch, rng, loss="wasserstein", d_steps=n_critic, clip=clip, ema_decay=ema_decay,
                         ema_start=ema_start, axis_name=axis_name)


FAMILY = gan_mlp.FAMILY._replace(name="wgan", train_step=train_step, eval_step=gans.eval_step_wasserstein,
                                 examples_per_step=functools.partial(gans.examples_per_step, key="n_critic"))
