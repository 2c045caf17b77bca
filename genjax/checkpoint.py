"""A thin wrapper on Orbax's CheckpointManager: async saves of host copies, restores into an explicit target."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from genjax.errors import UserError


class Checkpoints:
  """Checkpoints of one run under `directory/<step>/`."""

  def __init__(self, directory, max_to_keep: int = 3):
    self.directory = pathlib.Path(directory).resolve()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts an async save. The tree is copied to host memory first, so the caller may donate `state` next."""
    tree = jax.tree.map(lambda a: np.array(a, copy=True), serialization.to_state_dict(state))
    self.manager.save(step, args=ocp.args.StandardSave(tree))

  def restore(self, target, step: int | None = None):
    """Restores `step` (default: latest) into the structure, shapes, dtypes and shardings of `target`."""
    step = self.latest_step() if step is None else step
    template = serialization.to_state_dict(target)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), template)
    try:
      restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
      mismatched = [jax.tree_util.keystr(p) for (p, a), b in zip(jax.tree_util.tree_leaves_with_path(abstract),
                                                                  jax.tree.leaves(restored))
                    if a.shape != b.shape or a.dtype != b.dtype]
      if mismatched or jax.tree.structure(restored) != jax.tree.structure(abstract):
        raise ValueError(f"arrays differ from the model's: {mismatched[:3]}")
    except Exception as e:  # Orbax raises many types for unreadable or mismatched files
      reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
      raise UserError(f"checkpoint {self.directory / str(step)} is corrupt or does not match this model "
                      f"({reason}); it was left untouched") from e
    return serialization.from_state_dict(target, restored)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
