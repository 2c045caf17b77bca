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
    # The handler named up front, so a manager opened on an existing directory can read the saved metadata.
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts an async save. The tree is copied to host memory first, so the caller may donate `state` next."""
    tree = jax.tree.map(lambda a: np.array(a, copy=True), serialization.to_state_dict(state))
    self.manager.save(step, args=ocp.args.StandardSave(tree))

  def restore(self, target, step: int | None = None):
    """Restores `step` (default: latest) into the structure, shapes, dtypes and shardings of `target`. The saved
    arrays' metadata is checked against `target` before any array is read: a mismatched checkpoint fails at once,
    without starting reads that Orbax would abandon half done."""
    step = self.latest_step() if step is None else step
    template = serialization.to_state_dict(target)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), template)
    try:
      saved = self.manager.item_metadata(step)  # None where Orbax cannot tell: the restore below checks
      reason = None if saved is None else _mismatch(saved, abstract)
      if reason is None:
        restored = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
        reason = _mismatch(restored, abstract)
    except Exception as e:  # Orbax raises many types for unreadable or mismatched files
      reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
      raise self._error(step, reason) from e
    if reason is not None:
      raise self._error(step, reason)
    return serialization.from_state_dict(target, restored)

  def _error(self, step, reason: str) -> UserError:
    return UserError(f"checkpoint {self.directory / str(step)} is corrupt or does not match this model ({reason}); "
                     "it was left untouched")

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _mismatch(saved, abstract) -> str | None:
  """None if `saved` (restored arrays, or Orbax's metadata of them) has the paths, shapes and dtypes of `abstract`;
  otherwise which arrays differ."""
  def signature(tree):
    return {jax.tree_util.keystr(path): (tuple(getattr(leaf, "shape", ())), str(getattr(leaf, "dtype", type(leaf))))
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
  have, want = signature(saved), signature(abstract)
  if have == want:
    return None
  order = lambda k: ("['params']" not in k, k)  # noqa: E731 -- parameters before optimizer state
  missing, extra = sorted(want.keys() - have.keys(), key=order), sorted(have.keys() - want.keys(), key=order)
  differ = sorted((k for k in want.keys() & have.keys() if have[k] != want[k]), key=order)
  parts = [f"{len(missing)} arrays of the model missing, e.g. {missing[0]}"] if missing else []
  parts += [f"{len(extra)} arrays the model lacks, e.g. {extra[0]}"] if extra else []
  if differ:
    k = differ[0]
    parts.append(f"{len(differ)} arrays differ, e.g. {k}: {have[k][0]} {have[k][1]} saved, {want[k][0]} {want[k][1]} "
                 "in the model")
  return "; ".join(parts)
