"""A thin wrapper on Orbax's CheckpointManager: async saves of host copies, restores into an explicit target, and
the one-line errors of a checkpoint that cannot be written or read."""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import logging
import os
import pathlib
import re
import sys
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from genjax.errors import UserError
from genjax.eval import provenance

# OS errors of a write that failed for want of space or a working disk, rather than a bug.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG)


class WriteFailed(UserError):
  """A file of the run (a checkpoint, the metrics, a picture) could not be written: a full disk, a quota, a
  read-only or failing device."""


def disk_error(e: BaseException) -> str | None:
  """The OS error behind `e` ('No space left on device') when it is one of DISK_ERRNOS, else None. Orbax reports a
  failed TensorStore write as a ValueError whose text carries the error number (`os_error_code='28'`)."""
  while e is not None:
    if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
      return os.strerror(e.errno)
    m = re.search(r"os_error_code='(\d+)'", str(e))
    if m and int(m.group(1)) in DISK_ERRNOS:
      return os.strerror(int(m.group(1)))
    e = e.__cause__ or e.__context__
  return None


class BackgroundDiskReports:
  """Holds back what Orbax's and TensorStore's background threads print when a save fails for a disk error.

  A failed async save raises in several threads at once: each prints a traceback (through `threading.excepthook`
  and `sys.unraisablehook`) or an error log (the `absl` logger), and TensorStore's callbacks into event loops that
  the failed save already closed raise 'Event loop is closed'. The main thread reports the same failure as one line
  (WriteFailed) when it next saves or waits. While installed, these reports are held: `reported()` drops them once
  that line is said; otherwise they are printed at exit, as they would have been. Other exceptions and logs pass
  through untouched. For the command line's training process; a library caller keeps Python's own hooks."""

  def __init__(self):
    self.held: list = []
    self.replaying = self.dropped = False
    self.default_unraisable, self.default_thread = sys.unraisablehook, threading.excepthook

  @staticmethod
  def noise(exc) -> bool:
    """An exception of the failure the main thread reports: a disk error, or a callback into a closed loop."""
    return exc is not None and (disk_error(exc) is not None or
                                (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"))

  def install(self) -> BackgroundDiskReports:
    def unraisable(u):
      if self.noise(u.exc_value):
        self.hold(lambda: self.default_unraisable(u))
      else:
        self.default_unraisable(u)

    def thread(args):
      if self.noise(args.exc_value):
        self.hold(lambda: self.default_thread(args))
      else:
        self.default_thread(args)

    sys.unraisablehook, threading.excepthook = unraisable, thread
    logging.getLogger("absl").addFilter(self.log_filter)
    atexit.register(self.replay)
    return self

  def log_filter(self, record: logging.LogRecord) -> bool:
    if self.replaying or record.levelno < logging.ERROR:
      return True
    exc = record.exc_info[1] if record.exc_info else None
    m = re.search(r"os_error_code='(\d+)'", record.getMessage())
    if self.noise(exc) or (m and int(m.group(1)) in DISK_ERRNOS):
      self.hold(lambda: logging.getLogger(record.name).handle(record))
      return False
    return True

  def hold(self, emit) -> None:
    if not self.dropped:
      self.held.append(emit)

  def reported(self) -> None:
    """The failure was said as one line: what the background threads print about it is dropped, now and after."""
    self.dropped = True
    self.held.clear()

  def replay(self) -> None:
    self.replaying = True
    for emit in self.held:
      emit()
    self.held.clear()


def saved_steps(directory) -> list[int]:
  """The finished checkpoints under `directory`, read from the filesystem: Orbax writes a step under a temporary
  name and renames it when complete, so a step directory exists only once its save finished."""
  directory = pathlib.Path(directory)
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


def digest(tree) -> str:
  """SHA-256 over a state dict's arrays (path, dtype, shape and bytes of each leaf, in tree order)."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(path)} {a.dtype} {a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()


class Checkpoints:
  """Checkpoints of one run under `directory/<step>/`.

  `owner`: the writing process of the training run, which holds the workdir's lock. It removes temporary
  directories that an interrupted save left (readers such as evaluation leave them: a running save may be writing
  them), and records a digest of each save's arrays in `directory/../checkpoint-digests.json`. Every restore checks
  the arrays it read against that digest: Orbax's files carry no checksum, so a flipped bit in an array's bytes would
  otherwise restore silently. Checkpoints saved without a digest restore unchecked."""

  def __init__(self, directory, max_to_keep: int = 3, *, owner: bool = False):
    self.directory = pathlib.Path(directory).resolve()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True,
                                           cleanup_tmp_directories=owner)
    # The handler named up front, so a manager opened on an existing directory can read the saved metadata.
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_handlers=ocp.StandardCheckpointHandler())
    self.owner = owner
    self.pending: int | None = None  # the step whose async save may still be running
    self.digests_path = self.directory.parent / "checkpoint-digests.json"

  def digests(self) -> dict[str, str]:
    try:
      return json.loads(self.digests_path.read_text())
    except (OSError, ValueError):
      return {}

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts an async save. The tree is copied to host memory first, so the caller may donate `state` next. A
    previous save that failed for want of disk raises WriteFailed here (Orbax reports it when the next starts)."""
    tree = jax.tree.map(lambda a: np.array(a, copy=True), serialization.to_state_dict(state))
    if self.owner:
      keep = {str(s) for s in saved_steps(self.directory)} | {str(self.pending)}
      digests = {s: d for s, d in self.digests().items() if s in keep}
      provenance.write_json(self.digests_path, {**digests, str(step): digest(tree)})
    try:
      self.manager.save(step, args=ocp.args.StandardSave(tree))
    except Exception as e:
      # Orbax waits for the previous save before it starts this one, and reports that one's failure here.
      previous_failed = self.pending is not None and self.pending not in saved_steps(self.directory)
      failed = self.write_failed(e, self.pending if previous_failed else step)
      if failed is None:
        raise
      raise failed from e
    self.pending = step

  def write_failed(self, e: BaseException, step: int | None) -> WriteFailed | None:
    """WriteFailed naming the checkpoint of `step` that could not be written and the newest one that was, for a
    disk error; None for any other error."""
    reason = disk_error(e)
    if reason is None:
      return None
    newest = [s for s in saved_steps(self.directory) if s != step]
    saved = f"the newest saved checkpoint is step {newest[-1]}" if newest else "no checkpoint was saved"
    return WriteFailed(f"saving checkpoint {step} in {self.directory} failed: {reason}; {saved}, and nothing saved "
                       f"was removed: free space, then run again to resume")

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
        recorded = self.digests().get(str(step))
        if reason is None and recorded and _addressable(restored) and digest(restored) != recorded:
          reason = f"its arrays differ from the digest recorded when it was saved, in {self.digests_path.name}"
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
    """Waits for the running save; WriteFailed if it failed for want of disk."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      failed = self.write_failed(e, self.pending)
      if failed is None:
        raise
      raise failed from e

  def newest_intact(self, target, below: int) -> int | None:
    """The newest step before `below` that restores into `target`, or None."""
    for step in reversed([s for s in self.all_steps() if s < below]):
      try:
        self.restore(target, step)
        return step
      except UserError:
        continue
    return None

  def close(self) -> None:
    self.manager.close()


def _addressable(tree) -> bool:
  """Whether this process holds every array whole (not so for a checkpoint restored over several processes)."""
  return all(getattr(a, "is_fully_addressable", True) for a in jax.tree.leaves(tree))


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
