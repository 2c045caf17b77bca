"""genjax.lock: one holder per directory, a dead holder never blocks, and the lease protocol where the filesystem
has no locks. (Real processes racing and being killed: test_faults.py.)"""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from genjax import lock


def test_a_second_holder_is_refused_with_the_first_ones_pid_until_it_releases(tmp_path):
  first = lock.Lock(tmp_path).acquire()
  with pytest.raises(lock.Locked, match=rf"{tmp_path} is in use by another run \(pid {os.getpid()} on "):
    lock.Lock(tmp_path).acquire()
  first.release()
  lock.Lock(tmp_path).acquire().release()
  assert (tmp_path / lock.NAME).exists()  # the file stays: only the kernel's lock is dropped


def test_a_killed_holder_does_not_block(tmp_path):
  code = ("import sys, time; from genjax import lock; lock.Lock(sys.argv[1]).acquire(); print('held', flush=True); "
          "time.sleep(60)")
  p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
  try:
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(lock.Locked, match=f"pid {p.pid} "):
      lock.Lock(tmp_path).acquire()
  finally:
    p.kill()
    p.wait()
  lock.Lock(tmp_path).acquire().release()


def test_acquire_all_takes_every_lock_or_none(tmp_path):
  held = lock.Lock(tmp_path / "b").acquire()
  with pytest.raises(lock.Locked):
    lock.acquire_all([tmp_path / "a", tmp_path / "b"])
  lock.Lock(tmp_path / "a").acquire().release()  # "a" was released when "b" failed
  held.release()
  lock.release_all(lock.acquire_all([tmp_path / "a", tmp_path / "b"]))


@pytest.fixture
def no_kernel_locks(monkeypatch):
  def flock(fd, op):
    raise OSError(errno.ENOLCK, "No locks available")
  monkeypatch.setattr(lock.fcntl, "flock", flock)


def _write_holder(path, **info):
  path.write_text(json.dumps({"started": "then", **info}))


def test_lease_protocol_without_kernel_locks(tmp_path, no_kernel_locks):
  held = lock.Lock(tmp_path).acquire()
  assert held.lease and json.loads((tmp_path / lock.NAME).read_text())["pid"] == os.getpid()
  with pytest.raises(lock.Locked, match=f"pid {os.getpid()} "):
    lock.Lock(tmp_path).acquire()
  held.release()
  assert not (tmp_path / lock.NAME).exists()


def test_lease_protocol_judges_a_holder_on_this_host_by_its_pid(tmp_path, no_kernel_locks):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
  _write_holder(tmp_path / lock.NAME, pid=int(dead.stdout), host=socket.gethostname())
  lock.Lock(tmp_path).acquire().release()  # its pid is gone: taken over at once
  _write_holder(tmp_path / lock.NAME, pid=os.getppid(), host=socket.gethostname())
  with pytest.raises(lock.Locked, match=f"pid {os.getppid()} "):
    lock.Lock(tmp_path).acquire()


def test_lease_protocol_judges_another_hosts_holder_by_its_lease(tmp_path, no_kernel_locks):
  path = tmp_path / lock.NAME
  _write_holder(path, pid=1, host="elsewhere")
  with pytest.raises(lock.Locked, match="pid 1 on elsewhere"):
    lock.Lock(tmp_path).acquire()
  stale = time.time() - lock.LEASE_S - 1
  os.utime(path, (stale, stale))
  lock.Lock(tmp_path).acquire().release()
