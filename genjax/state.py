"""Training state: `TrainState` for one network, `GANState` for a generator/discriminator pair, and the
mixed-precision policy that their `apply_fn` can carry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from genjax.config import DTYPES


class TrainState(struct.PyTreeNode):
  """Params, BatchNorm statistics and optimizer state of one network; `apply_fn` and `tx` are static."""
  step: jax.Array
  params: Any
  batch_stats: Any  # {} for networks without BatchNorm
  opt_state: Any
  apply_fn: Callable = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, apply_fn, variables, tx) -> TrainState:
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
               opt_state=tx.init(params), apply_fn=apply_fn, tx=tx)

  @property
  def variables(self) -> dict:
    return {"params": self.params, "batch_stats": self.batch_stats} if self.batch_stats else {"params": self.params}

  def apply_gradients(self, grads, batch_stats=None) -> TrainState:
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


def _cast(tree, dtype):
  """Every floating array of `tree` as `dtype`; integers, keys and other leaves unchanged."""
  def cast(a):
    if isinstance(a, (jax.Array, np.ndarray)) and jnp.issubdtype(a.dtype, jnp.floating):
      return a.astype(dtype)
    return a
  return jax.tree.map(cast, tree)


@dataclasses.dataclass(frozen=True)
class MixedPrecision:
  """An `apply_fn` that computes in `dtype`: it casts the parameters and every module's floating inputs to `dtype`
  (a Linen method interceptor, so each Dense and Conv multiplies in `dtype`) and returns float32 outputs, so losses
  and their reductions stay in float32. The parameters, their gradients (the cast's transpose) and the optimizer
  state stay float32; BatchNorm keeps float32 statistics (Flax computes them at float32 or wider)."""
  apply_fn: Callable
  dtype: str

  def __call__(self, variables, *args, **kwargs):
    dtype = jnp.dtype(self.dtype)
    variables = {**variables, "params": _cast(variables["params"], dtype)}

    def cast_inputs(next_fun, args, kwargs, context):
      if context.method_name == "__call__":
        args, kwargs = _cast((args, kwargs), dtype)
      return next_fun(*args, **kwargs)

    with nn.intercept_methods(cast_inputs):
      out = self.apply_fn(variables, *_cast(args, dtype), **kwargs)
    return _cast(out, jnp.float32)


def compute_in(state, dtype: str):
  """`state` with every TrainState inside it computing in `dtype` ("float32": unchanged)."""
  if dtype not in DTYPES:
    raise ValueError(f"unknown dtype '{dtype}'; expected one of {DTYPES}")
  if dtype == "float32":
    return state

  def wrap(node):
    if isinstance(node, TrainState) and not isinstance(node.apply_fn, MixedPrecision):
      return node.replace(apply_fn=MixedPrecision(node.apply_fn, dtype))
    return node
  return jax.tree.map(wrap, state, is_leaf=lambda n: isinstance(n, TrainState))
