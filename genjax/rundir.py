"""A run's directories on disk: config.json, checkpoints, metrics.jsonl, pictures and timing, for one run or for
each member of a population (workdir/members/<i>/, each a run of its own for evaluation and the leaderboard)."""

from __future__ import annotations

import functools
import inspect
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax import checkpoint, lock, pictures, population
from genjax.errors import UserError
from genjax.eval import provenance

# Keys of config.json that a resumed run must share with the run that wrote the checkpoints...
MUST_MATCH = ("model", "data.name")
# ... but for these, which only change how samples are drawn, not what is trained or saved.
SAMPLING_ONLY = ("model.truncation",)


class Diverged(UserError):
  """A loss became NaN or Inf."""


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
  return out


def is_off(v) -> bool:
  """An option's value that leaves training as it was before the option existed: False, 0, "" or None."""
  return v is None or v is False or v == "" or (isinstance(v, (int, float)) and v == 0)


def check_workdir(workdir: pathlib.Path, resolved: dict) -> None:
  """A workdir that has checkpoints (its own, or its population members') only accepts a run of the same model on
  the same data. A model key that one config has and the other lacks (an option added to genjax since) matches
  when it is off (False, 0, "", None), as options default to off; SAMPLING_ONLY keys may differ."""
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
    if key in SAMPLING_ONLY or key not in old and is_off(new[key]) or key not in new and is_off(old[key]):
      continue
    if key.startswith(MUST_MATCH) and old.get(key) != new.get(key):
      raise UserError(f"{workdir} holds checkpoints trained with {key}={old.get(key)!r}, but this run has "
                      f"{key}={new.get(key)!r}; use another WORKDIR")


def _step_of(line: str) -> float:
  """The step of a metrics.jsonl line; infinity for a line cut short (a full disk), so that it is dropped."""
  try:
    return json.loads(line)["step"]
  except (ValueError, KeyError, TypeError):
    return float("inf")


class Log:
  """metrics.jsonl, TensorBoard scalars and the progress bar of one run directory."""

  def __init__(self, workdir: pathlib.Path, start: int, total: int, batch_size: int, quiet: bool,
               write: bool = True, log_every: int = 1):
    from tqdm import tqdm
    self.path = workdir / "metrics.jsonl"
    self.write = write  # False on processes other than 0: they check the metrics but write nothing
    kept = []
    if self.path.exists():  # a resumed run recomputes the steps after its checkpoint, bit for bit
      kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= start]
    if write:
      self.path.write_text("".join(line + "\n" for line in kept))
    # The training metrics' records (the learning curves); train.eval_every's scores are records of their own.
    self.records = [r for r in map(json.loads, kept) if not any(n.startswith("eval_") for n in r)]
    self.batch_size, self.log_every = batch_size, log_every
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

  def add(self, step: int, metrics: dict) -> None:
    """Takes the fetched metrics of a chunk ending at `step` ([K] arrays, one per step) and writes a record at each
    of its steps that `log_every` divides, with each metric's mean since the previous record. A chunk need not end
    on a log step: on accelerators K is chosen without regard to `log_every`."""
    k = len(next(iter(metrics.values())))
    for name, v in metrics.items():
      bad = np.flatnonzero(~np.isfinite(v))
      if bad.size:
        raise Diverged(f"{name} became {v[bad[0]]} at step {step - k + bad[0] + 1}")
    self.bar.update(k)
    first, cut, records = step - k + 1, 0, []
    for i in range(k):
      if (first + i) % self.log_every == 0:
        self.buffer.append({n: v[cut:i + 1] for n, v in metrics.items()})
        records.append({"step": first + i, **{n: float(np.mean(np.concatenate([m[n] for m in self.buffer])))
                                              for n in metrics}})
        self.buffer, cut = [], i + 1
    if cut < k:
      self.buffer.append({n: v[cut:] for n, v in metrics.items()})
    if records:
      self._write(records)

  def _write(self, records: list[dict]) -> None:
    now, last = time.perf_counter(), records[-1]["step"]
    if self.t_last is not None:  # the rate since the previous write, given to each record of this chunk
      for record in records:
        record["images_per_sec"] = (last - self.step_last) * self.batch_size / (now - self.t_last)
    self.t_last, self.step_last = now, last
    if self.write:
      with self.path.open("a") as f:
        f.write("".join(json.dumps(record) + "\n" for record in records))
    self.records += records
    for record in records:
      if self.tb is not None:
        for n, v in record.items():
          if n != "step":
            self.tb.add_scalar(n, v, record["step"])
    self.bar.set_postfix({n: f"{v:.3g}" for n, v in records[-1].items() if n != "step"}, refresh=False)

  def add_scores(self, step: int, scores: dict) -> None:
    """A record of evaluation scores at `step` (train.eval_every) in metrics.jsonl and TensorBoard, apart from the
    training metrics' records."""
    record = {"step": step, **{n: float(v) for n, v in scores.items()}}
    if self.write:
      with self.path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    if self.tb is not None:
      for n, v in scores.items():
        self.tb.add_scalar(n, float(v), step)
    self.bar.set_postfix({n: f"{v:.3g}" for n, v in scores.items()}, refresh=False)

  def restart_clock(self, step: int) -> None:
    self.t_last, self.step_last = time.perf_counter(), step

  def close(self) -> None:
    self.bar.close()
    if self.tb is not None:
      self.tb.close()


@functools.cache
def _jitted(fn):
  return jax.jit(fn, static_argnums=tuple(i for i, p in enumerate(inspect.signature(fn).parameters) if p == "n"))


class RunDir:
  """The directories of one run (`workdir`) or of a population's P members, with their checkpoints and logs.

  States pass in and out whole (stacked over members for a population); `members(state)` gives each member's
  view, which is what each directory saves, restores and draws."""

  def __init__(self, workdir, config, write: bool):
    self.root = pathlib.Path(workdir)
    self.config, self.write = config, write  # write: False on processes other than 0
    self.size = population.size(config)
    self.dirs = [self.root] if self.size == 1 else [self.root / "members" / str(i) for i in range(self.size)]
    self.logs: list[Log] = []
    # The writing process holds each directory's lock (genjax.lock) until close(): the root first, so that what is
    # checked below cannot change under this run; a member's own, so that no run starts in a member's directory.
    self.locks = lock.acquire_all([self.root]) if write else []
    try:
      check_workdir(self.root, config.to_dict())
      population.check_layout(self.root, self.size)
      if write and self.size > 1:
        self.locks += lock.acquire_all(self.dirs)
    except BaseException:
      lock.release_all(self.locks)
      raise

  @functools.cached_property
  def ckpts(self) -> list[checkpoint.Checkpoints]:
    """Opened on first use (Orbax creates the directories): a run that fails to build its state leaves none."""
    return [checkpoint.Checkpoints(d / "checkpoints", self.config.train.max_to_keep, owner=self.write)
            for d in self.dirs]

  def members(self, state) -> list:
    return [state] if self.size == 1 else [population.take(state, i) for i in range(self.size)]

  def start_step(self) -> int:
    """The step to resume from: train.resume_step if set, else the newest step every member has (members save one
    after another, so a crash can leave them a save apart)."""
    wanted = self.config.train.get("resume_step", 0)
    if wanted:
      self._set_aside_after(wanted)
    return max(set.intersection(*(set(c.all_steps()) for c in self.ckpts)), default=0)

  def _set_aside_after(self, step: int) -> None:
    """For train.resume_step: checks that every directory has checkpoint `step`, and moves the newer ones (a
    corrupt one among them) to checkpoints-abandoned/, so that this run's saves do not meet them; nothing is
    deleted. Runs before the checkpoint managers open, so they never list the moved steps."""
    for d in self.dirs:
      steps = checkpoint.saved_steps(d / "checkpoints")
      if step not in steps:
        raise UserError(f"train.resume_step={step}: {d / 'checkpoints'} has no checkpoint {step} "
                        f"(it has {steps or 'none'})")
      newer = [s for s in steps if s > step]
      if newer and self.write:
        aside = d / "checkpoints-abandoned"
        aside.mkdir(exist_ok=True)
        for s in newer:
          target = aside / str(s)
          n = 1
          while target.exists():
            target, n = aside / f"{s}.{n}", n + 1
          (d / "checkpoints" / str(s)).rename(target)
        print(f"genjax: resuming from step {step}; checkpoints {newer} moved to {aside}/")

  def restore(self, state, step: int, put):
    """`state` (placed by `put`) restored from `step`, read into its shardings whatever device count wrote it. A
    step that does not restore is left as it is, and the error names the newest older step that does."""
    restored = []
    for c, s in zip(self.ckpts, self.members(state)):
      try:
        restored.append(c.restore(s, step))
      except UserError as e:
        intact = [c2.newest_intact(s2, below=step) for c2, s2 in zip(self.ckpts, self.members(state))]
        if None in intact:
          raise
        older = min(intact)
        raise UserError(f"{e}; the newest intact checkpoint is step {older}: add --config.train.resume_step={older} "
                        "to resume from it (the newer ones are then moved aside, not deleted)") from None
    return restored[0] if self.size == 1 else put(population.stack(restored))

  def write_configs(self, image_shape, train_examples: int, devices: int) -> None:
    """config.json in each directory (a member's: the config that would train it alone), population.json above."""
    if not self.write:
      return
    resolved, swept = self.config.to_dict(), population.sweep(self.config)
    for i, d in enumerate(self.dirs):
      d.mkdir(parents=True, exist_ok=True)
      own = resolved if self.size == 1 else population.member_config(self.config, i, swept).to_dict()
      provenance.write_json(d / "config.json",
          {"config": own, "image_shape": list(image_shape), "train_examples": train_examples,
           "devices": devices, "processes": jax.process_count(),
           **({} if self.size == 1 else {"member": i, "population": self.size})})
    if self.size > 1:
      provenance.write_json(self.root / "population.json",
          {"config": resolved, "population": self.size, "sweep": swept,
           "members": [str(d.relative_to(self.root)) for d in self.dirs]})

  def open_logs(self, start: int, quiet: bool) -> None:
    t = self.config.train
    self.logs = [Log(d, start, t.steps, t.batch_size, quiet or not self.write or i > 0, write=self.write,
                     log_every=t.log_every) for i, d in enumerate(self.dirs)]

  def log(self, step: int, metrics) -> None:
    """Metrics of a chunk ending at `step`: [K] arrays, or [K, P] for a population."""
    for i, log in enumerate(self.logs):
      try:
        log.add(step, metrics if self.size == 1 else {name: v[:, i] for name, v in metrics.items()})
      except Diverged as e:
        raise Diverged(f"members/{i}: {e}" if self.size > 1 else str(e)) from None

  def open_evaluation(self, family, image_shape) -> None:
    """With train.eval_every: the family's cheap score and the best checkpoint (genjax.eval.during). For
    generators this loads the classifier, training it first where there is none."""
    self.scoring = None
    if self.config.train.get("eval_every", 0):
      from genjax.eval import during
      metric, score = during.scorer(family, self.config, image_shape, self.root)
      self.scoring = (metric, score, during.Best(self.root, metric, self.write))

  def evaluate(self, step: int, state) -> float:
    """Scores `state`, logs `eval_<metric>`, keeps the state if it is the best so far; the seconds it took (the
    logs' clocks restart after it, so that images/s counts training alone)."""
    t0 = time.perf_counter()
    metric, score, best = self.scoring
    value = score(state, step)
    best.offer(step, value, state)
    for log in self.logs:
      log.add_scores(step, {f"eval_{metric}": value})
    self.restart_clocks(step)
    return time.perf_counter() - t0

  def restart_clocks(self, step: int) -> None:
    for log in self.logs:
      log.restart_clock(step)

  def save_pictures(self, family, state, step: int, rng, n: int, x_test) -> None:
    """Samples from a fixed key and reconstructions of fixed test images, as PNG. Every process computes them (a
    program over global arrays runs on all processes); only a writing process saves them."""
    for d, member in zip(self.dirs, self.members(state)):
      if family.sample is not None:
        x = np.asarray(_jitted(family.sample)(member, rng, n))
        if self.write:
          pictures.save_grid(d / "samples" / f"samples_{step:06d}.png", x)
      if family.reconstruct is not None:
        x_hat = np.asarray(_jitted(family.reconstruct)(member, x_test))
        if self.write:
          pictures.save_reconstructions(d / "samples" / f"reconstructions_{step:06d}.png", x_test, x_hat)

  def save(self, step: int, state) -> None:
    if not bool(_all_finite(state)):
      raise Diverged(f"parameters became non-finite by step {step}")
    for c, member in zip(self.ckpts, self.members(state)):
      c.save(step, member)

  def latest_step(self) -> int | None:
    return self.ckpts[0].latest_step()

  def write_failed(self, e: OSError) -> checkpoint.WriteFailed | None:
    """WriteFailed naming the file that could not be written and the newest saved checkpoint, for a disk error
    (checkpoint.DISK_ERRNOS); None for any other error."""
    reason = checkpoint.disk_error(e)
    if reason is None:
      return None
    steps = set.intersection(*(set(checkpoint.saved_steps(d / "checkpoints")) for d in self.dirs))
    saved = f"the newest saved checkpoint is step {max(steps)}" if steps else "no checkpoint was saved"
    return checkpoint.WriteFailed(f"cannot write {e.filename or self.root}: {reason}; {saved}, and nothing saved "
                                  "was removed: free space, then run again to resume")

  def close(self, check: bool = True) -> None:
    """Waits for the running saves, closes the logs (TensorBoard's last flush) and releases the workdir's locks.
    A save or flush that failed raises (WriteFailed for a full disk), unless `check` is False because the run is
    already failing with an error of its own."""
    failed = []
    scoring = getattr(self, "scoring", None)
    try:
      for c in [*self.__dict__.get("ckpts", []), *([scoring[2].ckpts] if scoring else [])]:
        try:
          c.wait()
        except Exception:
          if check:
            raise
        finally:
          c.close()
    finally:
      for log in self.logs:
        try:
          log.close()
        except OSError as e:
          failed.append(e)
      lock.release_all(self.locks)
      self.locks = []
    if failed and check:
      raise self.write_failed(failed[0]) or failed[0]

  def finish(self, result) -> None:
    """The learning curves, and this run's time added to timing.json."""
    if not self.write:
      return
    for d, log in zip(self.dirs, self.logs):
      pictures.save_curves(d / "samples" / "curves.png", log.records,
                           [n for n in log.records[-1] if n not in ("step",)] if log.records else [])
      if result.steps > result.start_step:
        record_timing(d, result, self.size)


@jax.jit
def _all_finite(tree):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.floating)]))


def record_timing(workdir: pathlib.Path, result, population_size: int = 1) -> None:
  """Adds this run's wall time to workdir/timing.json (summed over resumes), for the leaderboard. A population's
  members each record the whole population's time, and images/s per member."""
  path = workdir / "timing.json"
  old = json.loads(path.read_text()) if path.exists() else {}
  if old.get("steps") != result.start_step:  # the times on file are of another history
    old = {}
  device = provenance.device_name()
  rate = None if math.isnan(result.images_per_sec) else round(result.images_per_sec, 1)
  provenance.write_json(path, {
      "steps": result.steps, "train_s": round(old.get("train_s", 0.0) + result.train_s + result.compile_s, 1),
      "compile_s": round(old.get("compile_s", 0.0) + result.compile_s, 1), "images_per_sec": rate,
      "devices": sorted(set(old.get("devices", [])) | {device}),
      **({"population": population_size} if population_size > 1 else {})})
