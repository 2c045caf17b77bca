"""One run per workdir: the exclusive lock that `train` holds on each of its run directories while it runs.

The lock is the file `<dir>/.genjax-run.lock`, holding its holder's pid, host and start time (for the message a
second run prints). Exclusion comes from the kernel: `fcntl.flock` on that file, which Linux also enforces across
the clients of an NFS share (as POSIX byte-range locks). The kernel drops the lock when its holder dies, by SIGKILL
or otherwise, so a dead run never blocks the next one; on NFS the server drops it when the client's lease lapses
(a power cut). The file itself stays: it is the place, not the lock, and removing it would let a run that opened it
just before lock a file no other run can see.

Where the filesystem has no locks (`flock` fails with ENOLCK, EOPNOTSUPP or ENOSYS: some FUSE and object-store
mounts), the file's existence is the lock (created with O_EXCL), its holder refreshes its modification time every
LEASE_S / 4 seconds, and it counts as dead when its pid is gone on this host, or, from another host, when it has
not been refreshed for LEASE_S seconds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import socket
import threading
import time

from genjax.errors import UserError

NAME = ".genjax-run.lock"
LEASE_S = 120.0
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class Locked(UserError):
  """Another live run holds the workdir."""


def holder_info() -> dict:
  return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime())}


def _read(path: pathlib.Path) -> dict:
  try:
    return json.loads(path.read_text() or "{}")
  except (OSError, ValueError):
    return {}


def _describe(directory: pathlib.Path, info: dict) -> str:
  who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"
  return (f"{directory} is in use by another run ({who}); wait for it to end, or use another WORKDIR "
          f"(make eval reads a running workdir's finished checkpoints)")


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, another user's
    return True
  return True


def _lease_dead(path: pathlib.Path, info: dict) -> bool:
  """Whether a lease-protocol lock file names a dead holder."""
  if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
    return not _pid_alive(info["pid"])
  try:
    return time.time() - path.stat().st_mtime > LEASE_S
  except FileNotFoundError:
    return True


class Lock:
  """The lock of one directory; `acquire` raises Locked (a one-line UserError) if a live run holds it."""

  def __init__(self, directory):
    self.directory = pathlib.Path(directory)
    self.path = self.directory / NAME
    self.fd: int | None = None
    self.lease = False
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def acquire(self) -> Lock:
    self.directory.mkdir(parents=True, exist_ok=True)
    try:
      fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
      fd, created = os.open(self.path, os.O_RDWR), False
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
        raise Locked(_describe(self.directory, _read(self.path))) from None
      if e.errno not in NO_LOCKS:
        raise
      if created:  # made only to try flock on; under the lease protocol its existence would be a lock
        self.path.unlink()
      return self._acquire_lease()
    self.fd = fd
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder_info()).encode(), 0)
    return self

  def _acquire_lease(self) -> Lock:
    for _ in range(2):  # a second try after clearing a dead holder's file
      try:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
      except FileExistsError:
        info = _read(self.path)
        if not _lease_dead(self.path, info):
          raise Locked(_describe(self.directory, info)) from None
        with contextlib.suppress(FileNotFoundError):
          self.path.unlink()
        continue
      os.write(fd, json.dumps(holder_info()).encode())
      os.close(fd)
      self.lease = True
      self._thread = threading.Thread(target=self._refresh, name="genjax-lock-lease", daemon=True)
      self._thread.start()
      return self
    raise Locked(_describe(self.directory, _read(self.path)))

  def _refresh(self) -> None:
    while not self._stop.wait(LEASE_S / 4):
      with contextlib.suppress(OSError):
        os.utime(self.path)

  def release(self) -> None:
    if self.fd is not None:
      os.close(self.fd)  # closing the descriptor drops the flock
      self.fd = None
    if self.lease:
      self._stop.set()
      if self._thread is not None:
        self._thread.join()
      with contextlib.suppress(FileNotFoundError):
        self.path.unlink()
      self.lease = False


def acquire_all(directories) -> list[Lock]:
  """Locks every directory, in order, or none: on a Locked error the ones already taken are released."""
  taken: list[Lock] = []
  try:
    for d in directories:
      taken.append(Lock(d).acquire())
  except BaseException:
    release_all(taken)
    raise
  return taken


def release_all(locks) -> None:
  for lk in reversed(list(locks)):
    lk.release()
