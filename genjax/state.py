"""Training state: `TrainState` for one network, `GANState` for a generator/discriminator pair."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  """Params, BatchNorm statistics and optimizer state of one network; `apply_fn` and `tx` are static."""
  step: jax.Array
  params: Any
  batch_stats: Any  # {} for networks without BatchNorm
  opt_state: Any
  apply_fn: Callable = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, apply_fn, variables, tx) -> "TrainState":
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
               opt_state=tx.init(params), apply_fn=apply_fn, tx=tx)

  @property
  def variables(self) -> dict:
    return {"params": self.params, "batch_stats": self.batch_stats} if self.batch_stats else {"params": self.params}

  def apply_gradients(self, grads, batch_stats=None) -> "TrainState":
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates), opt_state=opt_state,
                        batch_stats=self.batch_stats if batch_stats is None else batch_stats)


class GANState(struct.PyTreeNode):
  """Both halves of a GAN; `step` counts generator updates and seeds the step's randomness."""
  step: jax.Array
  gen: TrainState
  disc: TrainState


def step_key(rng, step, axis_name=None):
  """The key of one training step: `rng` folded with the step count and, under shard_map/pmap, with the device
  index, so every step and every device draws its own noise and a resumed run redraws the same."""
  rng = jax.random.fold_in(rng, step)
  if axis_name is not None:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis_name))
  return rng


def pmean(tree, axis_name):
  """Averages over `axis_name` when the step runs under shard_map/pmap; identity otherwise."""
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)
