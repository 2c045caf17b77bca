"""The training loop: data on the device, K steps per dispatch, metrics fetched a chunk late, Orbax checkpoints."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import pathlib
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax import checkpoint, data, models, parallel, pictures, population, xla
from genjax.state import compute_in
from genjax import config as cfg
from genjax.errors import UserError

# Keys of config.json that a resumed run must share with the run that wrote the checkpoints.
MUST_MATCH = ("model", "data.name")
DEFAULT_STEPS_PER_DISPATCH = 16  # steps per lax.scan when train.steps_per_dispatch is 0


class Diverged(UserError):
  """A loss became NaN or Inf."""


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


def steps_per_dispatch(config, start_step: int = 0) -> int:
  """Steps run by one dispatch (one `lax.scan`): DEFAULT_STEPS_PER_DISPATCH unless train.steps_per_dispatch says
  otherwise, reduced so that K divides every interval; chunks then end on log, sample and checkpoint steps and one
  compiled program serves the whole run.

  Conv models scan on CPU too since their convs' gradients are written as canonical NHWC / HWIO convs
  (`nets.canonical_conv`): XLA:CPU's ConvCanonicalization pass rewrites JAX's gradient convs into the form Eigen
  runs only outside loops, and under `lax.scan` they had run as naive loops (conv AE at batch 128 on a 2-core CPU:
  3355 -> 144 images/s), so conv models then dispatched one step at a time there.
  """
  t = config.train
  k = t.steps_per_dispatch or DEFAULT_STEPS_PER_DISPATCH
  return math.gcd(k, t.steps, t.log_every, t.sample_every, t.checkpoint_every, start_step)


def make_chunk(step_fn, k: int, constrain=lambda batch: batch):
  """A function running `k` steps on batches gathered on the device from uint8 images by index; `constrain` lays
  out each gathered batch (parallel.Plan shards it over the devices)."""

  def chunk(state, images, labels, idx_KxB, rng):
    def one(state, idx_B):
      batch = constrain({"image": images[idx_B].astype(jnp.float32) / 255.0, "label": labels[idx_B]})
      return step_fn(state, batch, rng)

    if k == 1:  # no scan: see steps_per_dispatch
      state, metrics = one(state, idx_KxB[0])
      return state, jax.tree.map(lambda a: a[None], metrics)
    return jax.lax.scan(one, state, idx_KxB)

  return chunk


def examples_per_step(family, config) -> int:
  """Examples one step reads: a family that makes several updates per step on distinct batches (a GAN's
  discriminator steps) defines examples_per_step; images/s still counts steps x train.batch_size."""
  if hasattr(family, "examples_per_step"):
    return family.examples_per_step(config)
  return config.train.batch_size


def check_step_kwargs(family, step_config) -> None:
  params = inspect.signature(family.train_step).parameters
  allowed = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "axis_name"]
  for key in step_config:
    if key not in allowed:
      raise UserError(f"config key 'step.{key}' is not a hyperparameter of {family.__name__}.train_step "
                      f"(those are {allowed})")


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out


def check_workdir(workdir: pathlib.Path, resolved: dict) -> None:
  """A workdir that has checkpoints (its own, or its population members') only accepts a run of the same model on
  the same data."""
  path = workdir / "config.json"
  if not path.exists():
    path = workdir / "population.json"
  if not path.exists() or not any(workdir.glob("checkpoints/[0-9]*")) and not any(
      workdir.glob("members/*/checkpoints/[0-9]*")):
    return
  try:
    old = _flat(json.loads(path.read_text())["config"])
  except (ValueError, KeyError) as e:
    raise UserError(f"{path} is unreadable; move the workdir aside or pick another WORKDIR") from e
  new = _flat(json.loads(json.dumps(resolved)))  # compare as JSON sees them: tuples become lists
  for key in sorted(set(old) | set(new)):
    if key.startswith(MUST_MATCH) and old.get(key) != new.get(key):
      raise UserError(f"{workdir} holds checkpoints trained with {key}={old.get(key)!r}, but this run has "
                      f"{key}={new.get(key)!r}; use another WORKDIR")


@jax.jit
def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.floating)]))


class _Log:
  """metrics.jsonl, TensorBoard scalars and the progress bar; the only place metrics leave the loop."""

  def __init__(self, workdir: pathlib.Path, start: int, total: int, batch_size: int, quiet: bool,
               write: bool = True):
    from tqdm import tqdm
    self.path = workdir / "metrics.jsonl"
    self.write = write  # False on processes other than 0: they check the metrics but write nothing
    kept = []
    if self.path.exists():  # a resumed run recomputes the steps after its checkpoint, bit for bit
      kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= start]
    if write:
      self.path.write_text("".join(line + "\n" for line in kept))
    self.records = [json.loads(line) for line in kept]
    self.batch_size = batch_size
    self.buffer: list[dict] = []
    self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=1.0, disable=quiet)
    self.tb = None
    if write:
      try:
        from tensorboardX import SummaryWriter
        self.tb = SummaryWriter(str(workdir), flush_secs=30)
      except ImportError:
        pass
    self.t_last, self.step_last = None, start

  def add(self, step: int, metrics: dict, log: bool) -> None:
    """Takes the fetched metrics of a chunk ending at `step` ([K] arrays); writes a record when `log`."""
    k = len(next(iter(metrics.values())))
    for name, v in metrics.items():
      bad = np.flatnonzero(~np.isfinite(v))
      if bad.size:
        raise Diverged(f"{name} became {v[bad[0]]} at step {step - k + bad[0] + 1}")
    self.buffer.append(metrics)
    self.bar.update(k)
    if not log:
      return
    now = time.perf_counter()
    record = {"step": step, **{n: float(np.mean(np.concatenate([m[n] for m in self.buffer])))
                               for n in metrics}}
    if self.t_last is not None:
      record["images_per_sec"] = (step - self.step_last) * self.batch_size / (now - self.t_last)
    self.t_last, self.step_last, self.buffer = now, step, []
    if self.write:
      with self.path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    self.records.append(record)
    if self.tb is not None:
      for n, v in record.items():
        if n != "step":
          self.tb.add_scalar(n, v, step)
    self.bar.set_postfix({n: f"{v:.3g}" for n, v in record.items() if n != "step"}, refresh=False)

  def restart_clock(self, step: int) -> None:
    self.t_last, self.step_last = time.perf_counter(), step

  def close(self) -> None:
    self.bar.close()
    if self.tb is not None:
      self.tb.close()


def save_pictures(family, state, workdir: pathlib.Path, step: int, rng, n: int, x_test, write: bool = True) -> None:
  """Samples from a fixed key and reconstructions of fixed test images, as PNG. Every process computes them (a
  program over global arrays runs on all processes); only a process with `write` saves them."""
  if hasattr(family, "sample"):
    x = np.asarray(_jitted(family.sample)(state, rng, n))
    if write:
      pictures.save_grid(workdir / "samples" / f"samples_{step:06d}.png", x)
  if hasattr(family, "reconstruct"):
    x_hat = np.asarray(_jitted(family.reconstruct)(state, x_test))
    if write:
      pictures.save_reconstructions(workdir / "samples" / f"reconstructions_{step:06d}.png", x_test, x_hat)


@functools.cache
def _jitted(fn):
  return jax.jit(fn, static_argnums=tuple(i for i, p in enumerate(inspect.signature(fn).parameters) if p == "n"))


def train(config, workdir, *, quiet: bool = False, family=None) -> Result:
  """Trains `config.model.name` (or `family`, a module with the family contract that is not in the model registry,
  such as `genjax.classifier`) to `config.train.steps`, resuming from the latest checkpoint in `workdir`."""
  parallel.initialize_distributed(config.get("distributed", False))
  family = family or models.get(config.model.name)
  cfg.check(config)
  family.validate(config)
  check_step_kwargs(family, config.step)
  t = config.train
  ds = data.load(config.data.name, "train", config.data.train_limit)
  n = len(ds.images)
  per_step = examples_per_step(family, config)
  if per_step > n:
    what = f"train.batch_size={t.batch_size}" + (f" x {per_step // t.batch_size} updates per step"
                                                  if per_step != t.batch_size else "")
    raise UserError(f"{what} is larger than the {n} training examples")
  size, swept = population.size(config), population.sweep(config)
  strategy = config.get("parallel", "auto")
  # What each member's run directory records, and what it would take to train that member alone.
  member_configs = [population.member_config(config, i, swept) for i in range(size)] if size > 1 else []
  if size > 1:
    if strategy not in ("auto", "none"):
      raise UserError(f"population={size} runs on one device for now; set parallel=none (got {strategy})")
    strategy = "none"
    for member in member_configs:  # each member's swept value must be valid on its own
      cfg.check(member)
      family.validate(member)
  layout = parallel.plan(strategy, per_step, t.batch_size)
  main = parallel.is_main()
  workdir = pathlib.Path(workdir)
  resolved = config.to_dict()
  check_workdir(workdir, resolved)
  population.check_layout(workdir, size)
  # One run directory per member: a population's members are runs of their own for evaluation and the leaderboard.
  dirs = [workdir] if size == 1 else [workdir / "members" / str(i) for i in range(size)]
  views = [lambda s: s] if size == 1 else [functools.partial(population.take, i=i) for i in range(size)]

  init_rng, step_rng, sample_rng = jax.random.split(jax.random.PRNGKey(t.seed), 3)
  example = {"image": jnp.zeros((per_step, *ds.images.shape[1:]), jnp.float32),
             "label": jnp.zeros((per_step,), jnp.int32)}
  try:
    init = lambda rng, c=config: family.init_state(rng, c, example)  # noqa: E731
    # An optim.lr sweep builds each member from its own config: the rate lives in its optimizer state.
    configs = member_configs if "optim.lr" in swept else None
    state = init(init_rng) if size == 1 else population.init(init, init_rng, size, configs)
  except ValueError as e:  # architecture/data mismatch, e.g. an image size the conv stack cannot halve
    raise UserError(f"cannot build {config.model.name} for images {ds.images.shape[1:]}: {e}") from e
  # Placed before a restore, which reads into these shardings whatever device count wrote the checkpoint.
  state = layout.put(compute_in(state, config.get("dtype", "float32")))
  ckpts = [checkpoint.Checkpoints(d / "checkpoints", t.max_to_keep) for d in dirs]
  # The newest step every member has: members save one after another, so a crash can leave them a save apart.
  start = max(set.intersection(*(set(c.all_steps()) for c in ckpts)), default=0)
  if start:
    restored = [c.restore(view(state), start) for c, view in zip(ckpts, views)]
    state = restored[0] if size == 1 else layout.put(population.stack(restored))
  if main:
    for i, d in enumerate(dirs):
      d.mkdir(parents=True, exist_ok=True)
      own = resolved if size == 1 else member_configs[i].to_dict()
      (d / "config.json").write_text(json.dumps(
          {"config": own, "image_shape": list(ds.images.shape[1:]), "train_examples": n,
           "devices": layout.devices, "processes": jax.process_count(),
           **({} if size == 1 else {"member": i, "population": size})}, indent=2))
    if size > 1:
      (workdir / "population.json").write_text(json.dumps(
          {"config": resolved, "population": size, "sweep": swept, "members": [str(d.relative_to(workdir))
                                                                               for d in dirs]}, indent=2))

  k = steps_per_dispatch(config, start)
  traces = []
  static = {name: v for name, v in config.step.items() if f"step.{name}" not in swept}
  step_fn = functools.partial(family.train_step, **static)
  if size > 1:
    step_fn = population.step(step_fn, size, swept)
  run_chunk = layout.compile(make_chunk, step_fn, k, on_trace=lambda: traces.append(1),
                             compiler_options=xla.compiler_options(xla.ynn_of(config)))
  images, labels, step_rng = layout.put((ds.images, ds.labels, step_rng))
  x_test = data.load(config.data.name, "test").images[:t.num_samples // 2].astype(np.float32) / 255.0

  logs = [_Log(d, start, t.steps, t.batch_size, quiet or not main or i > 0, write=main) for i, d in enumerate(dirs)]

  def log_chunk(step, metrics, log_now):  # metrics [K] arrays, or [K, P] for a population
    for i, log in enumerate(logs):
      try:
        log.add(step, metrics if size == 1 else {name: v[:, i] for name, v in metrics.items()}, log_now)
      except Diverged as e:
        raise Diverged(f"members/{i}: {e}" if size > 1 else str(e)) from None
  stop = []
  handlers = {s: signal.signal(s, lambda signum, _: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
  pending, step, compile_s = None, start, 0.0
  t0 = time.perf_counter()
  try:
    while step < t.steps:
      idx = layout.put_indices(data.batch_indices(t.seed, step, k, per_step, n))
      try:
        state, metrics = run_chunk(state, images, labels, idx, step_rng)
      except jax.errors.ConcretizationTypeError:  # TracerBoolConversionError too; raised while tracing
        if not swept:
          raise
        raise UserError(f"sweep: {', '.join(swept)} decides the structure of {config.model.name}'s step (a Python "
                        "branch on its value), so it cannot vary within one program; train those values as "
                        "separate runs") from None
      step += k
      if step == start + k:  # the first dispatch compiles; time it apart from training
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        for log in logs:
          log.restart_clock(step)
      if pending is not None:  # the previous chunk's metrics: the device is already busy with this one
        log_chunk(*pending)
      pending = (step, metrics, step % t.log_every == 0)
      stopping = bool(stop)  # one reading per chunk: the handler may append at any moment
      if jax.process_count() > 1:
        # A signal reaches the processes at different chunks, and a save is collective: they agree at each log
        # step (the same steps everywhere), so that all stop at the same one. Between them none acts on a signal.
        stopping = parallel.any_process(stopping) if step % t.log_every == 0 or step == t.steps else False
      save_now = step % t.checkpoint_every == 0 or step == t.steps or stopping
      if save_now or step % t.sample_every == 0:
        log_chunk(pending[0], jax.device_get(pending[1]), pending[2])
        pending = None
      if step % t.sample_every == 0 or step == t.steps:
        for d, view in zip(dirs, views):
          save_pictures(family, view(state), d, step, sample_rng, t.num_samples, x_test, write=main)
      if save_now:
        if not bool(_all_finite(state)):
          raise Diverged(f"parameters became non-finite by step {step}")
        for c, view in zip(ckpts, views):
          c.save(step, view(state))
      if stopping:
        raise Interrupted(stop[0] if stop else signal.SIGTERM, step)
    if pending is not None:
      log_chunk(pending[0], jax.device_get(pending[1]), pending[2])
  except Diverged as e:
    raise Diverged(f"{e}; training stopped, last good checkpoint: step {ckpts[0].latest_step()}") from None
  finally:
    for s, h in handlers.items():
      signal.signal(s, h)
    for c in ckpts:
      c.wait()
      c.close()
    for log in logs:
      log.close()
  train_s = time.perf_counter() - t0 - compile_s
  measured = step - start - k
  result = Result(state, start, step, k, len(traces), compile_s, train_s,
                  measured * t.batch_size / train_s if measured > 0 and train_s > 0 else float("nan"))
  if main:
    for d, log in zip(dirs, logs):
      pictures.save_curves(d / "samples" / "curves.png", log.records,
                           [n for n in log.records[-1] if n not in ("step",)] if log.records else [])
      if step > start:
        record_timing(d, result, size)
  return result


def record_timing(workdir: pathlib.Path, result: Result, population_size: int = 1) -> None:
  """Adds this run's wall time to workdir/timing.json (summed over resumes), for the leaderboard. A population's
  members each record the whole population's time, and images/s per member."""
  path = workdir / "timing.json"
  old = json.loads(path.read_text()) if path.exists() else {}
  if old.get("steps") != result.start_step:  # the times on file are of another history
    old = {}
  device = f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})"
  rate = None if math.isnan(result.images_per_sec) else round(result.images_per_sec, 1)
  path.write_text(json.dumps({
      "steps": result.steps, "train_s": round(old.get("train_s", 0.0) + result.train_s + result.compile_s, 1),
      "compile_s": round(old.get("compile_s", 0.0) + result.compile_s, 1), "images_per_sec": rate,
      "devices": sorted(set(old.get("devices", [])) | {device}),
      **({"population": population_size} if population_size > 1 else {})}, indent=2) + "\n")
