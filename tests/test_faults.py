"""Faults a real run meets, injected into real `genjax.main train` processes: SIGKILL at random moments, two runs
racing for one workdir, a disk that fills up while saving, a corrupt newest checkpoint; each for one run and for a
population. Marker `faults` (`make test-faults`, run by CI)."""

import hashlib
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import uuid

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

pytestmark = pytest.mark.faults

ROOT = pathlib.Path(__file__).resolve().parents[1]
# ae_dense on 512 images at batch 32: about 600 steps a second here, so a run of 3000 steps trains for seconds.
SMALL = ["--config.data.train_limit=512", "--config.train.batch_size=32", "--config.train.log_every=50",
         "--config.train.sample_every=100000", "--config.train.checkpoint_every=100"]


def _cmd(workdir, steps, *extra, population=1):
  pop = [f"--config.population={population}"] if population > 1 else []  # members differ by seed
  return [sys.executable, "-m", "genjax.main", "train", "--model", "ae_dense", "--workdir", str(workdir), "--quiet",
          f"--config.train.steps={steps}", *SMALL, *pop, *extra]


def _env():
  return {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _run(workdir, steps, *extra, population=1, timeout=240):
  return subprocess.run(_cmd(workdir, steps, *extra, population=population), cwd=ROOT, env=_env(),
                        capture_output=True, text=True, timeout=timeout)


def _start(workdir, steps, *extra, population=1):
  return subprocess.Popen(_cmd(workdir, steps, *extra, population=population), cwd=ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _last_line(stderr: str) -> str:
  """The error line: the last of stderr, which must hold exactly one `genjax: error:` line."""
  errors = [line for line in stderr.splitlines() if line.startswith("genjax: error: ")]
  assert len(errors) <= 1, errors
  lines = stderr.strip().splitlines()
  return lines[-1] if lines else ""


def _dirs(workdir, population):
  return [workdir] if population == 1 else [workdir / "members" / str(i) for i in range(population)]


def _arrays(run_dir, step):
  path = (pathlib.Path(run_dir) / "checkpoints" / str(step) / "default").resolve()
  tree = ocp.PyTreeCheckpointer().restore(str(path))
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def _assert_bitwise(a_dir, b_dir, step):
  a, b = _arrays(a_dir, step), _arrays(b_dir, step)
  assert a.keys() == b.keys()
  differ = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not differ, f"{a_dir} and {b_dir} differ at step {step}: {differ[:3]}"


def _assert_metrics_once_each(run_dir):
  steps = [json.loads(line)["step"] for line in (pathlib.Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(set(steps)), f"metrics.jsonl steps repeated or out of order: {steps}"


def _digest(directory) -> str:
  h = hashlib.sha256()
  for p in sorted(pathlib.Path(directory).rglob("*")):
    h.update(str(p.relative_to(directory)).encode())
    if p.is_file():
      h.update(p.read_bytes())
  return h.hexdigest()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """Uninterrupted runs, one and a population of 2: what every faulted run must end bitwise equal to; with the wall
  time of a second, identical run (compiled programs cached by then, as for the faulted runs), which sets when the
  kills land."""
  refs = {}
  for population, steps in ((1, 3000), (2, 1500)):
    workdir = tmp_path_factory.mktemp(f"reference{population}")
    r = _run(workdir, steps, population=population)
    assert r.returncode == 0, r.stderr[-2000:]
    start = time.perf_counter()
    r = _run(tmp_path_factory.mktemp(f"timed{population}"), steps, population=population)
    assert r.returncode == 0, r.stderr[-2000:]
    refs[population] = (workdir, steps, time.perf_counter() - start)
  return refs


@pytest.mark.parametrize("population,trials", [(1, 4), (2, 1)])
def test_sigkill_at_random_moments_then_resume_ends_bitwise_equal(reference, tmp_path, population, trials):
  ref_dir, steps, seconds = reference[population]
  kills = 0
  for trial in range(trials):
    rnd = random.Random(1000 * population + trial)
    workdir = tmp_path / f"trial{trial}"
    for _ in range(2):
      p = _start(workdir, steps, population=population)
      # Anywhere from start-up through compiling, training and saving, as a fraction of a whole run's time here.
      time.sleep(rnd.uniform(0.1, 0.8) * seconds)
      if p.poll() is None:
        p.send_signal(signal.SIGKILL)
        kills += 1
      p.wait(timeout=60)
    r = _run(workdir, steps, population=population)  # a SIGKILLed holder's lock must not block this run
    assert r.returncode == 0, r.stderr[-2000:]
    for ref, got in zip(_dirs(ref_dir, population), _dirs(workdir, population)):
      _assert_bitwise(ref, got, steps)
      _assert_metrics_once_each(got)
  print(f"population {population}: {trials} trials, {kills} kills, {trials} ended bitwise equal "
        f"(a whole run: {seconds:.1f} s)")
  assert kills >= trials  # the kills landed while the runs were alive


@pytest.mark.parametrize("population", [1, 2])
def test_two_runs_racing_for_one_workdir(reference, tmp_path, population):
  workdir = tmp_path / "race"
  first = _start(workdir, reference[population][1], population=population)
  # A population's rival starts in a member's directory: that is a run of its own as far as it knows.
  rival_dir = workdir if population == 1 else workdir / "members" / "0"
  second = _start(rival_dir, reference[population][1])
  codes, errs = [first.wait(timeout=240), second.wait(timeout=240)], [first.stderr.read(), second.stderr.read()]
  assert sorted(codes) == [0, 2], (codes, errs)
  loser = codes.index(2)
  line = _last_line(errs[loser])
  assert line.startswith("genjax: error: ") and "is in use by another run (pid " in line, line
  winner_pid = (first if loser == 1 else second).pid
  assert f"pid {winner_pid} " in line, line
  winner_dir = workdir if loser == 1 else rival_dir
  for d in _dirs(winner_dir, population if loser == 1 else 1):
    _assert_metrics_once_each(d)


def _mount_tmpfs(path, size) -> bool:
  path.mkdir(parents=True, exist_ok=True)
  try:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0
  except FileNotFoundError:
    return False


@pytest.mark.parametrize("population", [1, 2])
def test_a_full_disk_stops_with_one_line_keeps_what_was_saved_and_resumes(reference, tmp_path, population):
  disk = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
  # ae_dense's checkpoint with Adam's moments is about 0.6 MB: room for a few of them, not for all ten.
  if not _mount_tmpfs(disk, f"{2 * population}m"):
    pytest.skip("cannot mount a tmpfs here (not root); test_checkpoint.py simulates ENOSPC instead")
  try:
    workdir, steps = disk / "run", 1000
    r = _run(workdir, steps, "--config.train.max_to_keep=100", population=population)
    line = _last_line(r.stderr)
    assert r.returncode == 2, r.stderr[-2000:]
    assert line.startswith("genjax: error: ") and "No space left on device" in line, line
    assert "Traceback" not in r.stderr, r.stderr[-2000:]  # the background threads' reports are held back
    assert str(disk) in line and "nothing saved was removed" in line, line
    named = int(line.split("the newest saved checkpoint is step ")[1].split(",")[0])
    assert 0 < named < steps
    for d in _dirs(workdir, population):
      _arrays(d, named)  # what was saved is still there and reads
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    r = _run(workdir, steps, "--config.train.max_to_keep=100", population=population)
    assert r.returncode == 0, r.stderr[-2000:]
    ref = tmp_path / "ref"
    r = _run(ref, steps, "--config.train.max_to_keep=100", population=population)
    assert r.returncode == 0, r.stderr[-2000:]
    for a, b in zip(_dirs(ref, population), _dirs(workdir, population)):
      _assert_bitwise(a, b, steps)
  finally:
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("population,damage", [(1, "truncate"), (1, "flip"), (2, "flip")])
def test_a_corrupt_newest_checkpoint_names_the_newest_intact_one_and_resumes_from_it(tmp_path, population, damage):
  workdir, ref = tmp_path / "run", tmp_path / "ref"
  r = _run(workdir, 300, population=population)
  assert r.returncode == 0, r.stderr[-2000:]
  broken = _dirs(workdir, population)[-1] / "checkpoints" / "300"
  victim = max((p for p in broken.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  data = bytearray(victim.read_bytes())
  if damage == "truncate":
    victim.write_bytes(bytes(data[:len(data) // 2]))
  else:
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
  before = _digest(broken)
  r = _run(workdir, 400, population=population)
  line = _last_line(r.stderr)
  assert r.returncode == 2, r.stderr[-2000:]
  assert line.startswith("genjax: error: checkpoint ") and "/300 is corrupt" in line, line
  assert "the newest intact checkpoint is step 200" in line and "--config.train.resume_step=200" in line, line
  assert _digest(broken) == before  # left untouched
  r = _run(workdir, 400, "--config.train.resume_step=200", population=population)
  assert r.returncode == 0, r.stderr[-2000:]
  aside = broken.parent.parent / "checkpoints-abandoned" / "300"
  assert _digest(aside) == before  # moved aside, never deleted
  assert _run(ref, 400, population=population).returncode == 0
  for a, b in zip(_dirs(ref, population), _dirs(workdir, population)):
    _assert_bitwise(a, b, 400)


def test_eval_reads_a_workdir_while_it_trains(reference, tmp_path):
  workdir = tmp_path / "busy"
  trainer = _start(workdir, reference[1][1])
  try:
    deadline = time.time() + 120
    while not any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*")):
      assert time.time() < deadline and trainer.poll() is None
      time.sleep(0.2)
    r = subprocess.run([sys.executable, "-m", "genjax.main", "eval", "--workdir", str(workdir)], cwd=ROOT,
                       env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    step = json.loads((workdir / "eval.json").read_text())["step"]
    assert step > 0 and step % 100 == 0  # a finished checkpoint, never a temporary one
  finally:
    assert trainer.wait(timeout=240) == 0, trainer.stderr.read()[-2000:]
