"""The training loop: data on the device, K steps per dispatch, metrics fetched a chunk late, Orbax checkpoints."""

from __future__ import annotations

import dataclasses
import functools
import math
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax import config as cfg
from genjax import data, models, parallel, population, xla
from genjax.errors import UserError
from genjax.models.family import Family, hyperparameters
from genjax.rundir import Diverged, RunDir
from genjax.state import compute_in

DEFAULT_STEPS_PER_DISPATCH = 16  # on CPU, steps per lax.scan when train.steps_per_dispatch is 0
ACCELERATOR_STEPS_PER_DISPATCH = 64  # the most on GPUs and TPUs, where a small step is shorter than a dispatch
__all__ = ["ACCELERATOR_STEPS_PER_DISPATCH", "DEFAULT_STEPS_PER_DISPATCH", "Diverged", "Interrupted", "Result",
           "make_chunk", "steps_per_dispatch", "train", "with_precision"]


class Interrupted(Exception):
  """SIGINT or SIGTERM arrived; a checkpoint of `step` was saved."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"{signal.Signals(signum).name} at step {step}; checkpoint saved, run again to resume")
    self.signum, self.step = signum, step


@dataclasses.dataclass
class Result:
  state: object
  start_step: int
  steps: int
  steps_per_dispatch: int
  compiles: int
  compile_s: float
  train_s: float
  images_per_sec: float
  eval_s: float = 0.0  # train.eval_every's scoring, not counted in train_s


def steps_per_dispatch(config, start_step: int = 0, backend: str | None = None) -> int:
  """Steps run by one dispatch (one `lax.scan`), so that chunks end on every sample, checkpoint and evaluation step
  and at the end, and one compiled program serves the whole run.

  On CPU: DEFAULT_STEPS_PER_DISPATCH (or train.steps_per_dispatch) reduced to divide the log interval too, as
  measured best there. On accelerators (`backend`, default JAX's): the largest divisor of those intervals up to
  ACCELERATOR_STEPS_PER_DISPATCH (or train.steps_per_dispatch), whatever the log interval: the loop logs each step's
  metrics from the scan's stacked outputs. Conv models scan on CPU too because their convs' gradients are canonical
  convs (`kernels.canonical_conv`, docs/kernels.md)."""
  t = config.train
  evals = t.get("eval_every", 0)  # 0 (off) leaves the gcd as it is
  if (backend or jax.default_backend()) == "cpu":
    k = t.steps_per_dispatch or DEFAULT_STEPS_PER_DISPATCH
    return math.gcd(k, t.steps, t.log_every, t.sample_every, t.checkpoint_every, evals, start_step)
  intervals = math.gcd(t.steps, t.sample_every, t.checkpoint_every, evals, start_step)
  cap = t.steps_per_dispatch or ACCELERATOR_STEPS_PER_DISPATCH
  return max(d for d in range(1, min(cap, intervals) + 1) if intervals % d == 0)


def make_chunk(step_fn, k: int, constrain=lambda batch: batch, image_shape=None):
  """A function running `k` steps on batches gathered on the device from uint8 images by index; `constrain` lays
  out each gathered batch (parallel.Plan shards it over the devices). With `image_shape` (H, W, C) the resident
  images are rows of H·W·C bytes, reshaped per batch into the same batches: TPU memory tiles the last two axes of
  an array, and [N, 28, 28, 1] bytes would be padded to many times their size there (the loop does so on TPUs)."""

  def chunk(state, images, labels, idx_KxB, rng):
    def one(state, idx_B):
      x = images[idx_B] if image_shape is None else images[idx_B].reshape(idx_B.shape[0], *image_shape)
      batch = constrain({"image": x.astype(jnp.float32) / 255.0, "label": labels[idx_B]})
      return step_fn(state, batch, rng)

    if k == 1:  # no scan: see steps_per_dispatch
      state, metrics = one(state, idx_KxB[0])
      return state, jax.tree.map(lambda a: a[None], metrics)
    return jax.lax.scan(one, state, idx_KxB)

  return chunk


def with_precision(step_fn, precision: str):
  """`step_fn` traced under jax.default_matmul_precision(precision) (config key `matmul_precision`), which sets
  the precision of its float32 matmuls and convs; 'default' leaves them to the backend."""
  if precision == "default":
    return step_fn

  @functools.wraps(step_fn)
  def step(*args, **kwargs):
    with jax.default_matmul_precision(precision):
      return step_fn(*args, **kwargs)
  return step


def check_step_kwargs(family: Family, step_config) -> None:
  allowed = hyperparameters(family.train_step)
  for key in step_config:
    if key not in allowed:
      raise UserError(f"config key 'step.{key}' is not a hyperparameter of {family.name}.train_step "
                      f"(those are {allowed})")


def checked_family(family: Family, config, images_u8) -> Family:
  """`family` validated against `config` and the training images, prepared (GMMN+AE: its frozen autoencoder) and,
  for a population, wrapped into one family over the stacked members."""
  cfg.check(config)
  family.validate(config)
  check_step_kwargs(family, config.step)
  per_step, t = family.examples_per_step(config), config.train
  if per_step > len(images_u8):
    what = f"train.batch_size={t.batch_size}" + (f" x {per_step // t.batch_size} updates per step"
                                                  if per_step != t.batch_size else "")
    raise UserError(f"{what} is larger than the {len(images_u8)} training examples")
  if family.prepare is not None:
    family = family.prepare(config, images_u8)
  return population.wrap(family, config)


def init(family: Family, config, rng, image_shape):
  """The family's initial state for examples_per_step(config) images of `image_shape`."""
  per_step = family.examples_per_step(config)
  example = {"image": jnp.zeros((per_step, *image_shape), jnp.float32), "label": jnp.zeros((per_step,), jnp.int32)}
  try:
    return family.init_state(rng, config, example)
  except ValueError as e:  # architecture/data mismatch, e.g. an image size the conv stack cannot halve
    raise UserError(f"cannot build {config.model.name} for images {image_shape}: {e}") from e


def train(config, workdir, *, quiet: bool = False, family: Family | None = None) -> Result:
  """Trains `config.model.name` (or `family`, one outside the registry such as `genjax.classifier.FAMILY`) to
  `config.train.steps`, resuming from the latest checkpoint in `workdir` (or train.resume_step)."""
  parallel.initialize_distributed(config.get("distributed", False))
  t, ds = config.train, data.load(config.data.name, "train", config.data.train_limit)
  family = checked_family(family or models.get(config.model.name), config, ds.images)
  per_step, n = family.examples_per_step(config), len(ds.images)
  layout = parallel.plan(population.parallel_strategy(config), per_step, t.batch_size)
  run = RunDir(workdir, config, write=parallel.is_main())  # holds the workdir's lock until run.close()
  stop, handlers, failure = [], {}, None
  try:
    init_rng, step_rng, sample_rng = jax.random.split(jax.random.PRNGKey(t.seed), 3)
    # Placed before a restore, which reads into these shardings whatever device count wrote the checkpoint.
    state = init(family, config, init_rng, ds.images.shape[1:])
    state = layout.put(compute_in(state, config.get("dtype", "float32")))
    start = run.start_step()
    state = run.restore(state, start, layout.put) if start else state
    run.write_configs(ds.images.shape[1:], n, layout.devices)
    k, traces = steps_per_dispatch(config, start), []
    swept = population.sweep(config)
    step_fn = functools.partial(family.train_step, **{n: v for n, v in config.step.items()
                                                      if f"step.{n}" not in swept})
    step_fn = with_precision(step_fn, config.get("matmul_precision", "default"))
    rows = jax.default_backend() == "tpu"  # see make_chunk; elsewhere the [N, H, W, C] programs, as measured
    chunk_fn = functools.partial(make_chunk, image_shape=ds.images.shape[1:] if rows else None)
    run_chunk = layout.compile(chunk_fn, step_fn, k, on_trace=lambda: traces.append(1),
                               compiler_options=xla.compiler_options(xla.ynn_of(config)))
    images = ds.images.reshape(n, -1) if rows else ds.images
    images, labels, step_rng = layout.put((images, ds.labels, step_rng))
    x_test = data.load(config.data.name, "test").images[:t.num_samples // 2].astype(np.float32) / 255.0
    run.open_logs(start, quiet)
    run.open_evaluation(family, ds.images.shape[1:])
    handlers = {s: signal.signal(s, lambda signum, _: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    pending, step, compile_s, eval_s, evals = None, start, 0.0, 0.0, t.get("eval_every", 0)
    t0 = time.perf_counter()
    while step < t.steps:
      idx = layout.put_indices(data.batch_indices(t.seed, step, k, per_step, n))
      state, metrics = run_chunk(state, images, labels, idx, step_rng)
      step += k
      if step == start + k:  # the first dispatch compiles; time it apart from training
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        run.restart_clocks(step)
      if pending is not None:  # the previous chunk's metrics: the device is already busy with this one
        run.log(*pending)
      pending = (step, metrics)
      # Processes agree whether to stop at the chunks that reach a log step (the same steps on every process).
      stopping = parallel.agree_to_stop(bool(stop), step // t.log_every > (step - k) // t.log_every
                                        or step == t.steps)
      save_now = step % t.checkpoint_every == 0 or step == t.steps or stopping
      evaluate_now = evals and step % evals == 0
      if save_now or step % t.sample_every == 0 or evaluate_now:
        run.log(pending[0], jax.device_get(pending[1]))
        pending = None
      if step % t.sample_every == 0 or step == t.steps:
        run.save_pictures(family, state, step, sample_rng, t.num_samples, x_test)
      if save_now:
        run.save(step, state)
      if evaluate_now:
        eval_s += run.evaluate(step, state)
      if stopping:
        raise Interrupted(stop[0] if stop else signal.SIGTERM, step)
    if pending is not None:
      run.log(pending[0], jax.device_get(pending[1]))
    train_s, measured = time.perf_counter() - t0 - compile_s - eval_s, step - start - k
    result = Result(state, start, step, k, len(traces), compile_s, train_s,
                    measured * t.batch_size / train_s if measured > 0 and train_s > 0 else float("nan"), eval_s)
    run.finish(result)
    return result
  except Diverged as e:
    failure = e
    raise Diverged(f"{e}; training stopped, last good checkpoint: step {run.latest_step()}") from None
  except BaseException as e:
    failure = e
    failed = run.write_failed(e) if isinstance(e, OSError) else None  # a full disk: one line, not a traceback
    if failed is None:
      raise
    raise failed from e
  finally:
    for s, h in handlers.items():
      signal.signal(s, h)
    # A run that is already failing (but for a signal, whose last checkpoint must be known to be saved) does not
    # raise again for a save that failed meanwhile.
    run.close(check=failure is None or isinstance(failure, Interrupted))
