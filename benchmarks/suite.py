"""The benchmark suite: training-step throughput of every registered model, beside PyTorch, as a fraction of peak.

    make bench            # batches 64..2048, both dispatch modes, PyTorch eager and torch.compile
    make bench QUICK=1    # batch 128 only, 1 s timing windows, PyTorch eager only
    .venv/bin/python benchmarks/suite.py --models gan,ae --batches 128 --torch eager

For each model, batch size and dispatch mode it times the training loop's own jitted chunk (`train.make_chunk`: the
batch gathered on the device from resident uint8 images, the state donated) on synthetic data, so neither TensorFlow
nor TFDS is needed. Modes: `step` runs one training step per dispatch, `scan16` runs 16 under `lax.scan`, and
`train` as many as `make train` runs for the model's default config on this backend (`train.steps_per_dispatch`:
on CPU at most 16, cut to divide the log interval; on GPUs and TPUs up to 64); each record's `steps_per_dispatch`
says how many it timed. Each record holds:

- images_per_sec: the median over repeated timed windows, after a warm-up; train.batch_size images per step (as
  `make train` counts them). A window dispatches at least 16 steps (16 dispatches in `step` mode) and then waits
  for the last one, as the training loop does, so that on an accelerator it times the steps and not a host-device
  round trip per dispatch. With `--rounds R`, genjax and PyTorch are each measured R times, alternating, and the
  record holds the median of the R rounds (each round's in round_images_per_sec);
- compile_s: lowering and compiling, measured apart;
- flops_per_image: XLA's cost analysis of the one-step program, divided by the batch (a `lax.scan` body is counted
  once by the cost analysis, so the scan modes reuse the one-step count). `flops_source` says which program: the
  compiled one, or the lowered (unoptimized) one where the compiled count is missing or under half of it, as on
  GPUs, whose compiled programs call cuDNN and cuBLAS in custom calls that the cost analysis does not count;
- pct_of_peak: achieved FLOP/s over the measured matmul peak of the record's dtype, timed in the same run: float32
  at the configs' `matmul_precision` (on NVIDIA GPUs 'default' is TF32; the header also gives the full-float32
  peak, `peak_float32_highest_gflops`, on accelerators), and bfloat16 with float32 accumulation;
- peak_memory_bytes: the peak memory of the measured program itself, from XLA's buffer assignment (arguments,
  outputs and temporaries live at once; donated buffers once): per model, dtype and mode, on every backend, and not
  the process's running maximum, which earlier programs (the matmul peak's 8192^2 test) would set. None under pmap.

The PyTorch reference (benchmarks/torch_ref.py; `pip install -e '.[bench]'`, torch 2.13.0, CPU build) runs the same
architectures, optimizer and batch, eager and under `torch.compile`, for the models it implements. Each genjax record
gets `vs_pytorch_eager` and `vs_pytorch_compile`: its images/s over PyTorch's at the same batch, measured in the
same run. Results go to benchmarks/results/<device>-<date>.json, with a markdown summary beside it. Both are written
again after each model and batch, marked `"complete": false` until the run ends, so a run stopped after an hour keeps
what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import functools
import json
import os
import pathlib
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from timing import WINDOW_STEPS, timed  # noqa: E402 -- benchmarks/timing.py

from genjax import config as cfg  # noqa: E402
from genjax import parallel, population, xla  # noqa: E402
from genjax.eval import run as evaluation  # noqa: E402
from genjax.eval.provenance import cpu_name, environment, write_json, write_text  # noqa: E402
from genjax.models import MODELS  # noqa: E402
from genjax.state import compute_in  # noqa: E402
from genjax.train import make_chunk, steps_per_dispatch, with_precision  # noqa: E402

BATCHES = (64, 128, 256, 512, 1024, 2048)
MODES = {"step": 1, "scan16": 16, "train": None}  # None: make train's steps per dispatch (train.steps_per_dispatch)
# The scale-out section (issue 6): data-parallel strategies side by side, and population cost, on these models.
# The models' configs leave matmul_precision at the backend's default; every record says so.
PRECISION = cfg.base().matmul_precision
SCALE_MODELS = ("ae_dense", "vae_dense", "gan_mlp", "gan")
POPULATIONS = (1, 4, 8, 16)
POOL = 4096  # synthetic uint8 images resident on the device


def versions() -> dict:
  out = dict(environment()["versions"])
  try:
    import torch
    out["torch"] = torch.__version__
  except ImportError:
    pass
  return out


def matmul_peak(dtype=jnp.float32, min_seconds: float = 2.0, precision: str = PRECISION) -> float:
  """GFLOP/s of a large square matmul at its fastest repeat: the measured peak the models are compared with.
  Products accumulate in float32, as matmul units do for bfloat16 and as nets.Dense asks for. `precision` is a
  `matmul_precision` ('default': the backend's, TF32 for float32 on NVIDIA GPUs; 'highest': full float32)."""
  n = 2048 if jax.default_backend() == "cpu" else 8192
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  f = jax.jit(with_precision(lambda a: jnp.matmul(a, a, preferred_element_type=jnp.float32), precision))
  f(a).block_until_ready()
  t, _ = timed(lambda: f(a).block_until_ready(), min_seconds, stat=min)
  return 2 * n ** 3 / t / 1e9


def program_memory(compiled) -> int | None:
  """The peak bytes of one compiled program by XLA's memory analysis, or None where the backend gives none."""
  try:
    m = compiled.memory_analysis()
  except (AttributeError, NotImplementedError, RuntimeError):
    return None
  if m is None:
    return None
  peak = getattr(m, "peak_memory_in_bytes", 0)
  if peak:
    return int(peak)
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def _cost_flops(stage) -> float | None:
  try:
    cost = stage.cost_analysis()
  except (AttributeError, NotImplementedError, RuntimeError):
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and cost.get("flops") else None


def program_flops(lowered, compiled) -> tuple[float | None, str | None]:
  """(FLOPs of one run of the program, which program counted them): the compiled program's count, unless it is
  missing or under half of the lowered program's. On GPUs the compiled program's convolutions and matmuls are
  custom calls into cuDNN and cuBLAS, which XLA's cost analysis counts as nothing; the lowered (StableHLO)
  program still has them as convolutions and dot products, before fusion and simplification."""
  done, before = _cost_flops(compiled), _cost_flops(lowered)
  if done is not None and (before is None or done >= 0.5 * before):
    return done, "compiled"
  return (before, "lowered") if before is not None else (None, None)


class JaxModel:
  """One registered model at one batch size: its config, a state and synthetic data, reused across modes."""

  def __init__(self, name: str, batch: int):
    self.name, self.batch = name, batch
    self.config = c = cfg.model_config(name)
    c.train.batch_size = batch
    self.family = MODELS[name]
    self.per_step = self.family.examples_per_step(c)  # a WGAN's critic reads one batch per critic step
    rng = np.random.default_rng(0)
    self.images = jnp.asarray(rng.integers(0, 256, (POOL, 28, 28, 1), dtype=np.uint8))
    self.labels = jnp.asarray(rng.integers(0, 10, (POOL,), dtype=np.int32))
    self.example = {"image": jnp.zeros((2, 28, 28, 1)), "label": jnp.zeros((2,), jnp.int32)}
    self.state = self.family.init_state(jax.random.PRNGKey(0), c, self.example)
    self.ynn = xla.ynn_of(c)  # YNNPACK's share of the CPU program, as `make train` compiles it
    self.train_k = steps_per_dispatch(c)  # make train's steps per dispatch, on this backend
    self._programs = {}  # measure()'s arguments, K for the mode -> (compiled, FLOPs per step, source, compile_s)

  def step_flops(self) -> tuple[float | None, str | None]:
    """(FLOPs of one float32 training step, which program counted them): from the one-step program, compiled here
    without timing it when no `step` measurement did. The modes that scan reuse it: XLA's cost analysis counts a
    loop's body once."""
    program = (1, "float32", "none", 1, self.ynn)
    if program not in self._programs:
      self.measure("step", 0.0, time_it=False)
    return self._programs[program][1:3]

  def measure(self, mode: str, min_seconds: float, dtype: str = "float32", strategy: str = "none",
              members: int = 1, ynn: str | None = None, time_it: bool = True) -> dict | None:
    """The training loop's chunk as `make train` builds it: `strategy` lays it out (parallel.Plan), `dtype` is the
    compute dtype, `members` > 1 trains a vmapped population, and `ynn` overrides the config's xla_cpu_ynn.
    time_it=False compiles the program (kept for later measurements and step_flops) and returns None."""
    k = MODES[mode] or self.train_k
    step = with_precision(functools.partial(self.family.train_step, **self.config.step),
                          self.config.get("matmul_precision", "default"))
    state = self.state
    if members > 1:
      step = population.step(step, members, {})
      init = functools.partial(self.family.init_state, config=self.config, example_batch=self.example)
      state = population.init(init, jax.random.PRNGKey(0), members)
    layout = parallel.plan(strategy, self.per_step)
    # Copied: the chunk donates its state, and self.state serves the next measurement.
    state = layout.put(jax.tree.map(jnp.copy, compute_in(state, dtype)))
    images, labels, key = layout.put((self.images, self.labels, jax.random.PRNGKey(1)))
    idx = layout.put_indices(np.random.default_rng(1).integers(0, POOL, (k, self.per_step), dtype=np.int32))
    program = (k, dtype, strategy, members, ynn or self.ynn)  # `train` reuses step's or scan16's when K is the same
    first_call_s = None
    if program in self._programs:  # a later round of the same measurement
      compiled, flops, source, compile_s = self._programs[program]
    else:
      fn = layout.compile(make_chunk, step, k, compiler_options=xla.compiler_options(ynn or self.ynn))
      t = time.perf_counter()
      if hasattr(fn, "lower"):
        lowered = fn.lower(state, images, labels, idx, key)
        compiled = lowered.compile()
        compile_s = time.perf_counter() - t
        flops, source = program_flops(lowered, compiled)
      else:  # pmap compiles on its first call: that call's time, less a dispatch's, is reported as compile time
        compiled, flops, source = fn, None, None
        state, metrics = compiled(state, images, labels, idx, key)
        jax.block_until_ready(metrics)
        first_call_s = time.perf_counter() - t
    if not time_it:
      self._programs[program] = compiled, flops, source, compile_s
      return None
    for _ in range(2):  # warm-up
      state, metrics = compiled(state, images, labels, idx, key)
    jax.block_until_ready(metrics)

    dispatches = max(1, -(-WINDOW_STEPS // k))  # per timed window; the loop waits only for the last

    def window():
      nonlocal state
      for _ in range(dispatches):
        state, m = compiled(state, images, labels, idx, key)
      jax.block_until_ready(m)

    seconds, repeats = timed(window, min_seconds)
    seconds /= dispatches
    if first_call_s is not None:
      compile_s = max(first_call_s - seconds, 0.0)
    self._programs[program] = compiled, flops, source, compile_s
    memory = program_memory(compiled) if hasattr(compiled, "memory_analysis") else None
    return {"images_per_sec": self.batch * k / seconds, "compile_s": compile_s, "repeats": repeats,
            "steps_per_dispatch": k, "devices": layout.devices, "peak_memory_bytes": memory}


def scaleout(models, batch: int, strategies, populations, min_seconds: float, log=print) -> list[dict]:
  """Issue 6's comparisons, at one batch in the dispatch mode `make train` uses: each data-parallel strategy beside
  `none` (over every device: on a single device this is their overhead), and populations of P vmapped models beside
  one. Population records count one member's images (train.batch_size per step); `cost_vs_p1` is the time of a
  population step over the time of a single model's step (below P: cheaper than training them one after another)."""
  out = []
  for name in models:
    m = JaxModel(name, batch)
    mode = "train"
    base = {"model": name, "batch": batch, "mode": mode, "steps_per_dispatch": m.train_k, "dtype": "float32",
            "matmul_precision": PRECISION, "device_kind": jax.devices()[0].device_kind}
    # parallel=none is also the population of one: the same program, measured once.
    none = m.measure(mode, min_seconds)
    for strategy in ["none", *strategies]:
      r = none if strategy == "none" else m.measure(mode, min_seconds, strategy=strategy)
      out.append({**base, "section": "strategy", "strategy": strategy, "devices": r["devices"],
                  "images_per_sec": r["images_per_sec"], "compile_s": r["compile_s"],
                  "vs_none": r["images_per_sec"] / none["images_per_sec"]})
      log(f"{name:10s} batch {batch:5d} parallel={strategy:9s} on {r['devices']} device(s) "
          f"{r['images_per_sec']:10.0f} images/s  ({out[-1]['vs_none']:.2f}x none)  compile {r['compile_s']:5.1f} s")
    for p in sorted({1, *populations}):
      r = none if p == 1 else m.measure(mode, min_seconds, members=p)
      out.append({**base, "section": "population", "population": p, "devices": 1,
                  "images_per_sec": r["images_per_sec"], "models_images_per_sec": p * r["images_per_sec"],
                  "compile_s": r["compile_s"], "cost_vs_p1": none["images_per_sec"] / r["images_per_sec"]})
      log(f"{name:10s} batch {batch:5d} population={p:3d} {r['images_per_sec']:10.0f} images/s per model; a step "
          f"costs {out[-1]['cost_vs_p1']:.2f}x one model's")
  return out


def run(models, batches, modes, torch_modes, min_seconds: float, log=print, dtypes=("float32",),
        rounds: int = 1, progress=None) -> dict:
  """The records of every model and batch; `progress`, if given, is called with the results so far (the header and
  the records of each finished model and batch) so a long run that is stopped keeps what it measured."""
  device = jax.devices()[0]
  # Shared machines vary by tens of percent from minute to minute: the peak is measured again at the end and the
  # higher of the two is used, so pct_of_peak errs low rather than high.
  peak_s = min(3.0, 10 * min_seconds)  # short timing windows (the tests) get short peak windows too
  accelerator = jax.default_backend() != "cpu"
  peak = matmul_peak(min_seconds=peak_s)
  peaks = {"float32": peak}
  if "bfloat16" in dtypes or accelerator:
    peaks["bfloat16"] = matmul_peak(jnp.bfloat16, min_seconds=peak_s)
  header = {"date": datetime.date.today().isoformat(), "device_kind": device.device_kind,
            "platform": jax.default_backend(), "devices": 1, "cpu": cpu_name(), "versions": versions(),
            "malloc": xla.host_malloc(), "rounds": rounds, "matmul_precision": PRECISION,
            "peak_gflops": peak, "peak_how": "fastest of repeated jitted square matmuls "
            f"({2048 if jax.default_backend() == 'cpu' else 8192}^2, float32 accumulation), 2 n^3 flops"}
  if "bfloat16" in peaks:
    header["peak_bfloat16_gflops"] = peaks["bfloat16"]
  if accelerator and PRECISION != "highest":  # float32 'default' is TF32 on NVIDIA, bfloat16 passes on TPU
    header["peak_float32_highest_gflops"] = matmul_peak(min_seconds=peak_s, precision="highest")
  log(f"# {header['device_kind']} ({header['platform']}), {header['cpu']}; jax {jax.__version__}; "
      + ", ".join(f"{d} matmul peak {v:.0f} GFLOP/s" for d, v in peaks.items()) + f"; malloc {header['malloc']}")
  if header["platform"] == "cpu" and header["malloc"] == "default" and sys.platform.startswith("linux"):
    log(f"# note: GLIBC_TUNABLES={xla.MALLOC_TUNABLE} (as `make bench` sets) makes large-batch CPU steps faster")
  torch_ref = None
  if torch_modes:
    try:
      import torch_ref  # noqa: F401 -- benchmarks/torch_ref.py, needs the bench extra
    except ImportError as e:
      log(f"# PyTorch reference skipped: {e} (pip install -e '.[bench]')")
      torch_ref = None
  records, not_run = [], []
  for name in models:
    for batch in batches:
      base = {"model": name, "batch": batch, "dtype": "float32", "matmul_precision": PRECISION, "devices": 1,
              "device_kind": device.device_kind, "peak_gflops": peak,
              "train_steps_per_dispatch": steps_per_dispatch(cfg.model_config(name))}
      try:
        m = JaxModel(name, batch)
      except Exception as e:  # noqa: BLE001 -- a model that cannot run at this batch is reported, not fatal
        log(f"{name:10s} batch {batch:5d}: not run ({type(e).__name__}: {str(e)[:120]})")
        continue
      here = []  # this model and batch's records
      timed_runs = {}  # (framework, dtype, mode) -> one measurement per round, genjax and PyTorch alternating
      for rnd in range(rounds):
        for dtype in dtypes:
          for mode in modes:
            r = m.measure(mode, min_seconds, dtype=dtype)
            timed_runs.setdefault(("genjax", dtype, mode), []).append(r)
        if torch_ref is not None and name in torch_ref.MODELS:
          for tmode in torch_modes:
            if rnd > 0 and ("pytorch", "float32", tmode) not in timed_runs:
              continue  # it could not run in the first round
            try:
              r = torch_ref.measure(name, batch, tmode, min_seconds)
            except Exception as e:  # noqa: BLE001 -- torch.compile cannot differentiate twice (the WGAN-GP penalty)
              lines = str(e).strip().splitlines()
              why = (lines[-1] if lines else type(e).__name__)[:200]
              not_run.append({"model": name, "batch": batch, "framework": "pytorch", "mode": tmode, "why": why})
              log(f"{name:10s} batch {batch:5d} pytorch  {tmode:8s} not run: {why}")
              continue
            timed_runs.setdefault(("pytorch", "float32", tmode), []).append(r)
      for (framework, dtype, mode), rs in timed_runs.items():
        rec = {**base, "dtype": dtype, "peak_gflops": peaks[dtype], "framework": framework, "mode": mode,
               "images_per_sec": statistics.median(r["images_per_sec"] for r in rs),
               "compile_s": rs[0]["compile_s"], "repeats": sum(r["repeats"] for r in rs)}
        if rounds > 1:
          rec["round_images_per_sec"] = [r["images_per_sec"] for r in rs]
        if framework == "genjax":
          rec.update(xla_cpu_ynn=m.ynn if jax.default_backend() == "cpu" else None,
                     peak_memory_bytes=rs[0].get("peak_memory_bytes"), steps_per_dispatch=rs[0]["steps_per_dispatch"])
        else:  # each framework's record names the device it ran on
          rec.update(peak_memory_bytes=None, torch_device=rs[0].get("torch_device", "cpu"))
        here.append(rec)
      # Every record of this model and batch gets the one-step program's FLOP count (PyTorch does the same work).
      flops, flops_source = m.step_flops()
      flops_per_image = None if flops is None else flops / batch
      for rec in here:  # against the peak of the record's own dtype
        rec["flops_per_image"], rec["flops_source"] = flops_per_image, flops_source
        rec["pct_of_peak"] = (None if flops_per_image is None
                              else 100 * rec["images_per_sec"] * flops_per_image / (rec["peak_gflops"] * 1e9))
      _ratios(here)
      records += here
      if progress is not None:
        progress({**header, "records": records, "not_run": not_run})
      for rec in here:
        ratio = "".join(f"  {k[3:]} {rec[k]:.2f}x" for k in ("vs_pytorch_eager", "vs_pytorch_compile")
                        if rec.get(k) is not None)
        pct = f"{rec['pct_of_peak']:5.1f}%" if rec.get("pct_of_peak") is not None else "    —"
        log(f"{name:10s} batch {batch:5d} {rec['framework']:8s} {rec['mode']:8s} {rec['dtype']:8s} "
            f"{rec['images_per_sec']:10.0f} "
            f"images/s {pct} of peak  compile {rec['compile_s']:5.1f} s{ratio}")
  peak_end = matmul_peak(min_seconds=peak_s)
  for dtype, start in peaks.items():  # each dtype's peak again; the higher of its two is used
    end = peak_end if dtype == "float32" else matmul_peak(jnp.dtype(dtype), min_seconds=peak_s)
    if end <= start:
      continue
    header[f"peak_{'' if dtype == 'float32' else dtype + '_'}gflops"] = end
    for rec in records:
      if rec["dtype"] == dtype:
        rec["peak_gflops"] = end
        if rec.get("pct_of_peak") is not None:
          rec["pct_of_peak"] *= start / end
  header.update(peak_gflops=max(peak, peak_end), peak_start_gflops=peak, peak_end_gflops=peak_end)
  log(f"# float32 matmul peak at the end {peak_end:.0f} GFLOP/s; using {max(peak, peak_end):.0f}")
  return {**header, "records": records, "not_run": not_run}


def _ratios(here) -> None:
  """Adds vs_pytorch_<mode> to each genjax record among one model and batch's records."""
  torch = {r["mode"]: r["images_per_sec"] for r in here if r["framework"] == "pytorch"}
  for r in here:
    if r["framework"] == "genjax" and r["dtype"] == "float32":  # PyTorch runs float32
      for mode in ("eager", "compile"):
        if mode in torch:
          r[f"vs_pytorch_{mode}"] = r["images_per_sec"] / torch[mode]


def slug(text: str) -> str:
  return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_slug(result: dict) -> str:
  """The results' file-name prefix: the accelerator's kind, or on a CPU its model."""
  return slug(result["device_kind"] if result["platform"] != "cpu" else f"cpu {result['cpu']}")


def this_device() -> dict:
  """platform, device_kind and cpu of the machine measuring now: what names a result file (`device_slug`)."""
  return {"platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind, "cpu": cpu_name()}


def dated_result(out_dir, device: dict, tag: str) -> pathlib.Path:
  """out_dir/<device>-<today>-<tag>.json: where a benchmark script writes what it measured today."""
  return pathlib.Path(out_dir) / f"{device_slug(device)}-{datetime.date.today().isoformat()}-{tag}.json"


def joined_notes(*notes: str) -> str:
  """The non-empty notes in order, each once: a results file's note after a later run of the same day added one. A
  note already in the text so far (the same sentence given to a run that was resumed) is not added again."""
  out = ""
  for n in notes:
    if n and n not in out:
      out = f"{out} {n}" if out else n
  return out


def write_merged(out, result: dict, key, *, sort=None, same: tuple = ()) -> dict:
  """Writes `result` to the results file `out`, merged with what the file holds at this moment: the file's records
  whose `key` (a record's field, or a function of the record) this result has not measured stay (another run of the
  same script, the same day, may have written them since this one started), then this result's records (ordered by
  `sort`, a key function, if given); the commands of both in the order they ran, and the notes of both. Where the
  file differs from `result` in a key of `same` (a setting the records depend on), the file's records are dropped.
  The read and the write hold an exclusive flock on the folder, so two writers do not interleave. Returns what was
  written."""
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fd = os.open(out.parent, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    now = json.loads(out.read_text()) if out.exists() else {}
    if any(now.get(k) != result.get(k) for k in same):
      now = {}
    key_of = key if callable(key) else (lambda r: r[key])
    mine = {key_of(r) for r in result["records"]}
    records = [r for r in now.get("records", []) if key_of(r) not in mine] + list(result["records"])
    mine_run = result.get("commands", [])  # a command run again moves to the end: the list stays in time order
    merged = {**result, "commands": [c for c in now.get("commands", []) if c not in mine_run] + mine_run,
              "note": joined_notes(now.get("note", ""), result.get("note", "")),
              "records": sorted(records, key=sort) if sort else records}
    write_json(out, merged, indent=1)
  finally:
    os.close(fd)  # releases the lock
  return merged


def flat_config(d: dict, prefix: str = "") -> dict:
  """A config's JSON dict as {"section.key": value}, lists as tuples (as ConfigDict holds them)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flat_config(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = tuple(v) if isinstance(v, list) else v
  return out


def during_training(run_dir) -> list[dict]:
  """train.eval_every's scores in a run's metrics.jsonl, to four significant digits: [{step, <metric>: value}] (the
  cheap in-loop score: FID of 2000 samples, test -ELBO of 1000 images or test MSE)."""
  path = pathlib.Path(run_dir) / "metrics.jsonl"
  rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
  return [{"step": r["step"], **{k.removeprefix("eval_"): float(f"{v:.4g}") for k, v in r.items()
                                 if k.startswith("eval_")}} for r in rows if any(k.startswith("eval_") for k in r)]


def scored(run_dir, steps: int, settings: dict, raw_generator: bool = False, truncation: float | None = None) -> dict:
  """make eval's result for a run (its trained generator itself with `raw_generator`; its samples' latents truncated
  at `truncation` rather than the run's setting): the saved eval.json (eval-raw.json, eval-truncation0.json, ...)
  when it scored step `steps` with `settings` (make eval's keyword arguments), else a new evaluation."""
  path = pathlib.Path(run_dir) / (evaluation.result_name(raw_generator=raw_generator, truncation=truncation) + ".json")
  result = json.loads(path.read_text()) if path.exists() else {}
  if result.get("step") != steps or any(result.get("settings", {}).get(k) != v for k, v in settings.items()):
    result = evaluation.evaluate_run(run_dir, **settings, raw_generator=raw_generator, truncation=truncation)
  return result


def where(result: dict) -> str:
  """The device a results file was measured on, for its title."""
  return f"CPU: {result['cpu']}" if result["platform"] == "cpu" else f"{result['device_kind']} ({result['platform']})"


def summary(result: dict) -> str:
  """Markdown: per model and batch, the best genjax mode, PyTorch eager and compiled, and the ratios."""
  lines = [f"# Benchmarks: {where(result)}, {result['date']}{' (QUICK)' if result.get('quick') else ''}", "",
           *(["**Partial:** the run has not finished (or was stopped); below is every model and batch it finished.",
              ""] if result.get("complete") is False else []),
           f"{result['cpu']}; jax {result['versions']['jax']}"
           + (f", torch {result['versions']['torch']}" if "torch" in result["versions"] else "")
           + f". Measured matmul peak: float32 ({result.get('matmul_precision', 'default')} precision) "
           f"{result['peak_gflops']:.0f} GFLOP/s"
           + "".join(f", {name} {result[key]:.0f}" for key, name in (
               ("peak_float32_highest_gflops", "float32 at highest precision"), ("peak_bfloat16_gflops", "bfloat16"))
               if result.get(key))
           + ". One device."
           + (f" malloc: {result['malloc']} (genjax/xla.py)." if "malloc" in result else ""), "",
           "| model | batch | genjax step | genjax scan16 | genjax as make train (K) | PyTorch eager | torch.compile | "
           "best genjax / eager | best genjax / compile | MFLOP/image | % of peak (best) | compile s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  keys = sorted({(r["model"], r["batch"]) for r in result["records"]})
  for model, batch in keys:
    rs = {(r["framework"], r["mode"]): r for r in result["records"]
          if r["model"] == model and r["batch"] == batch and r["dtype"] == "float32"}
    g = [r for (fw, _), r in rs.items() if fw == "genjax"]
    best = max(g, key=lambda r: r["images_per_sec"]) if g else None
    cell = lambda key, rs=rs: f"{rs[key]['images_per_sec']:.0f}" if key in rs else "—"  # noqa: E731
    ratio = lambda mode, rs=rs, best=best: (f"{best['images_per_sec'] / rs[('pytorch', mode)]['images_per_sec']:.2f}"  # noqa: E731
                          if best and ("pytorch", mode) in rs else "—")
    f = best.get("flops_per_image") if best else None
    train = rs.get(("genjax", "train"))
    k = f" ({train['steps_per_dispatch']})" if train else ""
    lines.append(f"| {model} | {batch} | {cell(('genjax', 'step'))} | {cell(('genjax', 'scan16'))} | "
                 f"{cell(('genjax', 'train'))}{k} | "
                 f"{cell(('pytorch', 'eager'))} | {cell(('pytorch', 'compile'))} | {ratio('eager')} | "
                 f"{ratio('compile')} | {f / 1e6 if f else float('nan'):.2f} | "
                 f"{best['pct_of_peak'] if best and best.get('pct_of_peak') is not None else float('nan'):.1f} | "
                 f"{best['compile_s'] if best else float('nan'):.1f} |")
  rounds = result.get("rounds", 1)
  lines += ["", "images/s: median of timed dispatches after warm-up, float32, train.batch_size images per step"
            + (f"; each figure the median of {rounds} rounds, genjax and PyTorch alternating" if rounds > 1 else "")
            + ". MFLOP/image: XLA's cost analysis of genjax's one-step program (the PyTorch models do the same "
            "arithmetic). — : not run (the JSON's `not_run` says why)."]
  if rounds > 1:
    lines += ["", "| model | batch | best genjax / PyTorch eager, each round |", "|---|---|---|"]
    for model, batch in keys:
      here = [r for r in result["records"] if (r["model"], r["batch"], r["dtype"]) == (model, batch, "float32")]
      torch = [r for r in here if (r["framework"], r["mode"]) == ("pytorch", "eager")]
      ours = [r["round_images_per_sec"] for r in here if r["framework"] == "genjax"]
      if torch and ours:
        per = [max(o[i] for o in ours) / t for i, t in enumerate(torch[0]["round_images_per_sec"])]
        lines.append(f"| {model} | {batch} | {', '.join(f'{x:.2f}' for x in per)} |")
  ynn = sorted({(r["xla_cpu_ynn"], r["model"]) for r in result["records"] if r.get("xla_cpu_ynn")})
  if ynn:
    by = {v: [m for w, m in ynn if w == v] for v, _ in ynn}
    lines += ["", "XLA:CPU kernels (each experiment's `xla_cpu_ynn`, genjax/xla.py): "
              + "; ".join(f"{v}: {', '.join(ms)}" for v, ms in by.items()) + "."]
  bf16 = [r for r in result["records"] if r["dtype"] == "bfloat16"]
  if bf16:
    lines += ["", f"## bfloat16 compute (parameters and optimizer state float32); bfloat16 matmul peak "
              f"{result.get('peak_bfloat16_gflops', float('nan')):.0f} GFLOP/s", "",
              "| model | batch | mode | float32 images/s | bfloat16 images/s | bf16 / f32 |",
              "|---|---|---|---|---|---|"]
    for r in bf16:
      f32 = next((q for q in result["records"] if q["framework"] == "genjax" and q["dtype"] == "float32" and
                  (q["model"], q["batch"], q["mode"]) == (r["model"], r["batch"], r["mode"])), None)
      lines.append(f"| {r['model']} | {r['batch']} | {r['mode']} | "
                   f"{f32['images_per_sec'] if f32 else float('nan'):.0f} "
                   f"| {r['images_per_sec']:.0f} | "
                   f"{r['images_per_sec'] / f32['images_per_sec'] if f32 else float('nan'):.2f} |")
  scale = result.get("scaleout", [])
  strategies = [r for r in scale if r["section"] == "strategy"]
  if strategies:
    lines += ["", "## Data-parallel strategies (float32, the dispatch mode make train uses)", "",
              "| model | batch | mode | strategy | devices | images/s | vs none | compile s |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['mode']} | {r['strategy']} | {r['devices']} | "
              f"{r['images_per_sec']:.0f} | {r['vs_none']:.2f} | {r['compile_s']:.1f} |" for r in strategies]
  pops = [r for r in scale if r["section"] == "population"]
  if pops:
    lines += ["", "## Population training: P models vmapped in one program (float32)", "",
              "| model | batch | mode | P | images/s per model | images/s, all models | step cost vs P=1 |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['mode']} | {r['population']} | {r['images_per_sec']:.0f} | "
              f"{r['models_images_per_sec']:.0f} | {r['cost_vs_p1']:.2f} |" for r in pops]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--quick", action="store_true", help="batch 128 only, 1 s timing windows")
  p.add_argument("--models", default="", help="comma-separated; default every registered model")
  p.add_argument("--batches", default="", help="comma-separated; default 64..2048 (QUICK: 128)")
  p.add_argument("--modes", default=",".join(MODES))
  p.add_argument("--torch", default="", help="PyTorch modes to run beside: eager, compile, or none; default both "
                 "(QUICK: eager, as torch.compile takes 2-30 s per model)")
  p.add_argument("--seconds", type=float, default=0.0, help="timing window per measurement")
  p.add_argument("--dtypes", default="", help="compute dtypes; default float32,bfloat16 (QUICK on CPU: float32)")
  p.add_argument("--strategies", default="jit,shard_map,pmap",
                 help="data-parallel strategies timed beside parallel=none (none: skip the section)")
  p.add_argument("--populations", default="", help="population sizes; default 1,4,8,16 (QUICK: 1,4)")
  p.add_argument("--scale_models", default="", help=f"models of the scale-out section, or none; default "
                 f"{','.join(SCALE_MODELS)} (QUICK: ae_dense)")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  p.add_argument("--tag", default="", help="appended to the results' file name, e.g. scaleout")
  p.add_argument("--rounds", type=int, default=1, help="measure each model's genjax and PyTorch steps this many "
                 "times, alternating, and report the medians (a noisy machine moves both between minutes)")
  a = p.parse_args(argv)
  if a.rounds < 1:
    print(f"bench: error: --rounds must be at least 1, got {a.rounds}", file=sys.stderr)
    return 2
  models = a.models.split(",") if a.models else sorted(MODELS)
  unknown = [m for m in models if m not in MODELS]
  if unknown:
    print(f"bench: error: unknown model {unknown[0]!r}; registered: {', '.join(sorted(MODELS))}", file=sys.stderr)
    return 2
  batches = [int(b) for b in a.batches.split(",")] if a.batches else ([128] if a.quick else list(BATCHES))
  torch_modes = [] if a.torch == "none" else (a.torch or ("eager" if a.quick else "eager,compile")).split(",")
  seconds = a.seconds or (1.0 if a.quick else 3.0)
  cpu = jax.default_backend() == "cpu"
  dtypes = a.dtypes.split(",") if a.dtypes else (["float32"] if a.quick and cpu else ["float32", "bfloat16"])
  strategies = [] if a.strategies in ("", "none") else a.strategies.split(",")
  bad = [st for st in strategies if st not in parallel.STRATEGIES or st == "none"]
  if bad:  # checked before the run, not after an hour of it
    print(f"bench: error: unknown strategy {bad[0]!r}; expected some of jit, shard_map, pmap, or none",
          file=sys.stderr)
    return 2
  populations = [int(p) for p in a.populations.split(",")] if a.populations else (
      [1, 4] if a.quick else list(POPULATIONS))
  scale_models = [] if a.scale_models == "none" else a.scale_models.split(",") if a.scale_models else (
      ["ae_dense"] if a.quick else [m for m in SCALE_MODELS if m in models])
  t0 = time.perf_counter()
  out = pathlib.Path(a.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  where_ = this_device()
  stem = (f"{device_slug(where_)}-{datetime.date.today().isoformat()}{'-quick' if a.quick else ''}"
          f"{'-' + slug(a.tag) if a.tag else ''}")

  def save(result: dict, complete: bool) -> None:
    """Writes the JSON and markdown, each through a temporary file, so a stopped run leaves whole files."""
    result.update(quick=a.quick, complete=complete, wall_s=round(time.perf_counter() - t0, 1))
    write_json(out / f"{stem}.json", result, indent=1)
    write_text(out / f"{stem}.md", summary(result))

  result = run(models, batches, a.modes.split(","), torch_modes, seconds, dtypes=dtypes, rounds=a.rounds,
               progress=lambda partial: save(partial, complete=False))
  result["scaleout"] = scaleout(scale_models, 128 if 128 in batches else batches[0], strategies, populations,
                                seconds) if scale_models else []
  save(result, complete=True)
  print(f"bench: {len(result['records'])} records in {result['wall_s']:.0f} s -> {out / stem}.json and .md")
  return 0


if __name__ == "__main__":
  sys.exit(main())
