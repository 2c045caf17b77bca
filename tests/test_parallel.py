"""Data parallelism: jit sharding, shard_map and pmap on 2 simulated CPU devices match one device with the same
global batch; checkpoints move between device counts; `make test-distributed` runs 2 processes over gloo."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from genjax import models, parallel, train
from genjax.errors import UserError
from genjax.eval import restore

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "scaleout_run.py"
TIMEOUT_S = 240  # simulated devices once deadlocked in an all-reduce here: a hang must fail, not stall CI


def run(*args, devices: int = 1, env=None, timeout=TIMEOUT_S):
  """scaleout_run.py in a fresh process (simulated devices are fixed at backend start); returns its JSON line."""
  env = {**os.environ, **(env or {})}
  env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
  try:
    p = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=HERE)
  except subprocess.TimeoutExpired:
    pytest.fail(f"{args} on {devices} devices hung for {timeout} s")
  assert p.returncode == 0, p.stderr[-3000:]
  lines = [json.loads(line) for line in p.stdout.strip().splitlines() if line.startswith("{")]
  return lines if "," in str(args[1]) else lines[-1]


def load(path):
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def max_diff(a, b):
  assert a.keys() == b.keys()
  return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a if a[k].size)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  """Single-device runs to compare with, cached per model."""
  cache = {}

  def get(model):
    if model not in cache:
      d = tmp_path_factory.mktemp(f"one_{model}")
      info = run(model, "none", d / "run", d / "out.npz")
      assert info["devices"] == 1
      cache[model] = load(d / "out.npz")
    return cache[model]
  return get


STRATEGIES = ("jit", "shard_map", "pmap")


# ae_dense: plain gradients. classifier_bn: BatchNorm, whose batch statistics must be those of the global batch.
# Both are deterministic, so every strategy must reproduce the single-device run up to float reassociation.
@pytest.mark.parametrize("model", ["ae_dense", "classifier_bn"])
def test_strategies_match_one_device(tmp_path, one_device, model):
  infos = run(model, ",".join(STRATEGIES), tmp_path / "run", tmp_path / "out.npz", devices=2)
  assert [(i["parallel"], i["devices"], i["compiles"]) for i in infos] == [(s, 2, 1) for s in STRATEGIES]
  for strategy in STRATEGIES:
    assert max_diff(load(tmp_path / f"out-{strategy}.npz"), one_device(model)) < 1e-5, strategy
    cfg = json.loads((tmp_path / f"run-{strategy}" / "config.json").read_text())
    assert cfg["devices"] == 2 and cfg["config"]["parallel"] == strategy


def test_checkpoints_move_between_device_counts(tmp_path):
  """2 devices save, 1 device restores the same arrays and resumes; then 2 devices resume that run again."""
  work = tmp_path / "run"
  run("ae_dense", "shard_map", work, tmp_path / "two.npz", 4, devices=2)
  restored = restore.load_run(work)
  assert restored.step == 4
  two = load(tmp_path / "two.npz")
  assert max_diff({k: np.asarray(v) for k, v in _flat(restored.state).items()}, two) == 0.0
  info = run("ae_dense", "none", work, tmp_path / "one.npz", 8)
  assert (info["start"], info["steps"], info["devices"]) == (4, 8, 1)
  info = run("ae_dense", "jit", work, tmp_path / "again.npz", 12, devices=2)
  assert (info["start"], info["steps"], info["devices"], info["compiles"]) == (8, 12, 2, 1)


def _flat(state):
  import jax
  from conftest import arrays
  return {jax.tree_util.keystr(p): a for p, a in jax.tree_util.tree_leaves_with_path(arrays(state))}


def test_plan_choices():
  assert parallel.resolve("auto") == "none"  # one CPU device here: never multi-device by default
  with pytest.raises(UserError, match="unknown parallel strategy 'mpi'"):
    parallel.resolve("mpi")
  assert parallel.plan("none", 32).devices == 1
  assert parallel.plan("jit", 32).devices == 1  # a mesh of the one device works too


def test_bad_strategy_is_one_line(tmp_path):
  from conftest import small_config
  c = small_config("ae_dense")
  c.parallel = "horovod"
  with pytest.raises(UserError, match="unknown parallel strategy"):
    train.train(c, tmp_path, quiet=True)


def test_batch_must_divide_over_devices(tmp_path):
  env = {"GENJAX_TEST_BATCH": "33"}
  p = subprocess.run([sys.executable, "-c", (
      "import sys; sys.path.insert(0, '.'); from genjax import parallel\n"
      "from genjax.errors import UserError\n"
      "for examples, batch in ((33, 33), (10, 5)):\n"
      "  try:\n    parallel.plan('jit', examples, batch)\n  except UserError as e:\n    print(e)")],
      env={**os.environ, **env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
      capture_output=True, text=True, timeout=120, cwd=HERE.parent)
  # a WGAN step of 5 critic updates on 5 examples each: 10 examples divide, each update's 5 do not
  assert p.stdout.splitlines() == [
      "parallel=jit: examples per step (33) do not divide over 2 devices; use a train.batch_size divisible by 2",
      "parallel=jit: train.batch_size (5) do not divide over 2 devices; use a train.batch_size divisible by 2"], \
      p.stdout + p.stderr[-2000:]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(n: int, args, timeout=TIMEOUT_S):
  """n processes of scaleout_run.py joined by GENJAX_COORDINATOR on localhost, one CPU device each."""
  port = _free_port()
  procs = []
  for i in range(n):
    env = {**os.environ, "GENJAX_COORDINATOR": f"localhost:{port}", "GENJAX_NUM_PROCESSES": str(n),
           "GENJAX_PROCESS_ID": str(i)}
    procs.append(subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], env=env, cwd=HERE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      assert p.returncode == 0, err[-3000:]
      outs.append(json.loads(out.strip().splitlines()[-1]))
  except subprocess.TimeoutExpired:
    pytest.fail(f"{n} processes of {args} hung for {timeout} s")
  finally:
    for p in procs:
      p.kill()
  return outs


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["jit", "shard_map"])
def test_two_processes_match_one(tmp_path, one_device, strategy):
  """2 processes x 1 CPU device over gloo = 1 process with the same global batch; the 2-process checkpoint
  restores and resumes in one process. Only process 0 writes logs and pictures."""
  work = tmp_path / "run"
  outs = launch(2, ("ae_dense", strategy, work, tmp_path / "out.npz"))
  assert [(o["processes"], o["devices"], o["compiles"]) for o in outs] == [(2, 2, 1)] * 2
  assert max_diff(load(tmp_path / "out.npz"), one_device("ae_dense")) < 1e-5
  assert len((work / "metrics.jsonl").read_text().splitlines()) == 2  # steps 2 and 4, written once
  restored = restore.load_run(work)
  assert restored.step == 4
  info = run("ae_dense", "none", work, tmp_path / "resumed.npz", 8)
  assert (info["start"], info["steps"], info["processes"]) == (4, 8, 1)


def test_generator_batchnorm_uses_global_batch_statistics():
  """DCGAN's generator with axis_name normalizes each shard with the whole batch's statistics: checked under
  vmap with an axis name, which runs the same collectives as shard_map and pmap on one device."""
  import jax
  import jax.numpy as jnp

  from genjax.models import gan
  g = gan.Generator((28, 28, 1), (32, 16))
  z = jax.random.normal(jax.random.PRNGKey(0), (8, 10)) * jnp.arange(1, 9)[:, None]  # shards differ in scale
  variables = jax.jit(lambda z: g.init(jax.random.PRNGKey(1), z, train=False))(z)  # jitted: eager takes seconds
  full, full_stats = jax.jit(lambda z: g.apply(variables, z, train=True, mutable=["batch_stats"]))(z)

  def shard(z, axis_name):
    return g.apply(variables, z, train=True, axis_name=axis_name, mutable=["batch_stats"])
  split, stats = jax.jit(jax.vmap(lambda z: shard(z, "data"), axis_name="data"))(z.reshape(2, 4, 10))
  np.testing.assert_allclose(split.reshape(full.shape), full, atol=1e-5)
  np.testing.assert_allclose(jax.tree.leaves(stats)[0][0], jax.tree.leaves(full_stats)[0], rtol=1e-5, atol=1e-6)
  local, _ = jax.jit(jax.vmap(lambda z: shard(z, None)))(z.reshape(2, 4, 10))
  assert float(jnp.max(jnp.abs(local.reshape(full.shape) - full))) > 1e-2  # per-shard statistics differ


@pytest.mark.distributed
def test_every_model_lowers_for_gpus_and_tpus_in_bfloat16_as_a_population_and_over_two_devices():
  """Every registered model's scanned step in bfloat16, as a population of 2, and under `jit` and `shard_map` over
  2 (simulated) devices, traced as for an accelerator, lowers for CUDA and TPUs (over the devices as a 2-partition
  program) with none of the CPU kernels (tests/lowering.py)."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  try:
    p = subprocess.run([sys.executable, str(HERE / "lowering.py")], env=env, capture_output=True,
                       text=True, timeout=TIMEOUT_S, cwd=HERE)
  except subprocess.TimeoutExpired:
    pytest.fail(f"lowering over 2 devices took over {TIMEOUT_S} s")
  assert p.returncode == 0, p.stderr[-3000:]
  assert p.stdout.count("lowered for cuda, tpu") == 4 * len(models.MODELS)
