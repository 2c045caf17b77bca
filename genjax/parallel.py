"""Data parallelism: the device mesh, global arrays, and a chunk of training steps under jit, shard_map or pmap."""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from genjax.errors import UserError

AXIS = "data"
STRATEGIES = ("none", "jit", "shard_map", "pmap")


def initialize_distributed(enabled: bool) -> None:
  """Joins JAX's multi-process runtime when `distributed=true` or $GENJAX_COORDINATOR is set.

  Cluster environments JAX detects itself (SLURM, Cloud TPU, MPI) need nothing more. Elsewhere give
  $GENJAX_COORDINATOR (host:port of process 0), $GENJAX_NUM_PROCESSES and $GENJAX_PROCESS_ID. On CPU the
  collectives between processes run over gloo.
  """
  address = os.environ.get("GENJAX_COORDINATOR")
  if not (enabled or address) or jax.distributed.is_initialized():
    return
  # Only the CPU client reads this: harmless beside GPUs and TPUs, needed for CPU processes.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {}
  if address:
    try:
      kwargs = dict(coordinator_address=address, num_processes=int(os.environ["GENJAX_NUM_PROCESSES"]),
                    process_id=int(os.environ["GENJAX_PROCESS_ID"]))
    except (KeyError, ValueError) as e:
      raise UserError("GENJAX_COORDINATOR needs GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID (integers)") from e
  try:
    jax.distributed.initialize(**kwargs)
  except (ValueError, RuntimeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(f"distributed=true, but jax.distributed.initialize failed: {first}; outside SLURM, Cloud TPU "
                    "and MPI set GENJAX_COORDINATOR=host:port, GENJAX_NUM_PROCESSES and GENJAX_PROCESS_ID") from e


def any_process(flag: bool) -> bool:
  """Whether `flag` is set in any process (a small collective; every process must call it)."""
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def agree_to_stop(local: bool, sync_point: bool) -> bool:
  """Whether every process stops after this chunk. One process: `local` (a signal arrived). Several: a signal
  reaches them at different chunks and a save is collective, so they agree at sync points (the same steps in every
  process: log steps and the last), and between them none acts on a signal."""
  if jax.process_count() == 1:
    return local
  return any_process(local) if sync_point else False


def is_main() -> bool:
  """Whether this process writes logs, pictures and progress (process 0, or the only one)."""
  return jax.process_index() == 0


def resolve(name: str) -> str:
  """`auto` is `jit` when there is more than one device and the devices are accelerators or span processes;
  `none` on one device and on a single CPU process, where simulated devices share the same cores."""
  if name == "auto":
    multi = jax.device_count() > 1 and (jax.default_backend() != "cpu" or jax.process_count() > 1)
    return "jit" if multi else "none"
  if name not in STRATEGIES:
    raise UserError(f"unknown parallel strategy '{name}'; expected auto, {', '.join(STRATEGIES)}")
  if name == "none" and jax.process_count() > 1:
    raise UserError("parallel=none cannot run across processes; use auto, jit or shard_map")
  return name


@dataclasses.dataclass(frozen=True)
class Plan:
  """Where one run's arrays live and how its chunk of steps is compiled.

  `none`: everything on the default device. `jit`: the state and the resident dataset replicated over a 1-D mesh of
  every device, each batch sharded along `data`; XLA inserts the gradient all-reduce. `shard_map` and `pmap` run the
  step per device on its share of the batch with `axis_name="data"`: the step `pmean`s its gradients, metrics and
  BatchNorm statistics (the generators' BatchNorm also normalizes with statistics of the global batch).
  """
  strategy: str
  mesh: Mesh | None

  @property
  def devices(self) -> int:
    return 1 if self.mesh is None else self.mesh.size

  def replicated(self):
    return None if self.mesh is None else NamedSharding(self.mesh, P())

  def put(self, tree):
    """Host or device arrays -> the same values on every device of the plan (one copy per process's devices)."""
    if self.mesh is None:
      return jax.device_put(tree)
    sharding = self.replicated()
    return jax.tree.map(lambda a: _global(np.asarray(a), sharding), tree)

  def put_indices(self, idx_KxB: np.ndarray):
    """Batch indices [K, B], the same on every process -> a global array sharded along B (each process feeds its
    own devices' shares)."""
    if self.mesh is None or self.strategy == "pmap":  # pmap takes host indices and splits them itself
      return idx_KxB
    return _global(idx_KxB, NamedSharding(self.mesh, P(None, AXIS)))

  def compile(self, chunk_fn, step_fn, k: int, on_trace=lambda: None, compiler_options=None):
    """jit of `chunk_fn(step, k)` (train.make_chunk) laid out by the strategy, donating the state.

    Args: step_fn(state, batch, rng, axis_name=None), a family's train_step with its hyperparameters bound;
    compiler_options: XLA options (`genjax.xla.compiler_options`). jax.pmap takes none, so under pmap the program
    is lowered and compiled with them ahead of time, once per argument signature (`run.executables`).
    """
    def traced(fn):
      def wrapper(*args):
        on_trace()
        return fn(*args)
      return wrapper

    if self.strategy == "none":
      return jax.jit(traced(chunk_fn(step_fn, k)), donate_argnums=0, compiler_options=compiler_options)
    repl, batch = P(), P(None, AXIS)
    if self.strategy == "jit":
      shard = NamedSharding(self.mesh, P(AXIS))
      chunk = chunk_fn(step_fn, k, constrain=lambda b: jax.lax.with_sharding_constraint(b, shard))
      s = self.replicated()
      return jax.jit(traced(chunk), in_shardings=(s, s, s, NamedSharding(self.mesh, batch), s),
                     out_shardings=(s, s), donate_argnums=0, compiler_options=compiler_options)
    per_device = chunk_fn(functools.partial(step_fn, axis_name=AXIS), k)
    if self.strategy == "shard_map":
      # check_vma=False: with it on, the gradient of the replicated parameters would already be summed over the
      # devices (the transpose of their implicit broadcast), and the step's pmean would then average n equal sums,
      # n times the global batch's gradient. Off, the step sees its local gradient, as under pmap.
      mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(repl, repl, repl, batch, repl),
                             out_specs=(repl, repl), check_vma=False)
      return jax.jit(traced(mapped), donate_argnums=0, compiler_options=compiler_options)
    # pmap: the indices arrive as [K, B]; each device takes its [K, B / n] columns, as under shard_map.
    n = self.devices
    mapped = jax.pmap(traced(per_device), axis_name=AXIS, in_axes=(None, None, None, 0, None),
                      out_axes=(None, None), devices=self.mesh.devices.tolist(), donate_argnums=0)

    executables = {}

    def run(state, images, labels, idx_KxB, rng):
      idx = np.asarray(idx_KxB)
      args = (state, images, labels, idx.reshape(idx.shape[0], n, -1).transpose(1, 0, 2), rng)
      if not compiler_options:
        return mapped(*args)
      leaves, tree = jax.tree.flatten(args)
      signature = (tree, tuple((np.shape(leaf), leaf.dtype) for leaf in leaves))
      if signature not in executables:  # the model's XLA options, as jit gets them (docs/kernels.md)
        executables[signature] = mapped.lower(*args).compile(compiler_options)
      return executables[signature](*args)
    run.executables = executables
    return run


def _global(x: np.ndarray, sharding):
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def plan(strategy: str, examples: int, batch_size: int | None = None) -> Plan:
  """The resolved strategy over all devices, after checking that a step's `examples` (and each of its minibatches
  of `batch_size`, a GAN's critic updates) divide among them."""
  strategy = resolve(strategy)
  if strategy == "none":
    return Plan("none", None)
  n = jax.device_count()
  for what, size in (("examples per step", examples), ("train.batch_size", batch_size or examples)):
    if size % n:
      raise UserError(f"parallel={strategy}: {what} ({size}) do not divide over {n} devices; use a "
                      f"train.batch_size divisible by {n}")
  if strategy == "pmap" and jax.process_count() > 1:
    raise UserError("parallel=pmap runs on one process's devices; across processes use jit or shard_map")
  return Plan(strategy, Mesh(np.array(jax.devices()), (AXIS,)))
