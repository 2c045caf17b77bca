"""What produced a result (`environment()`: versions, device, CPU, malloc) and how result files are written
(`write_json`, `write_text`: through a temporary file, then renamed, so an interrupted write never leaves half a
file). The evaluation, the experiments (genjax.lab) and the benchmarks all stamp and write their results here."""

from __future__ import annotations

import json
import os
import pathlib
import platform

import jax
import numpy as np

from genjax import xla


def environment() -> dict:
  """Library versions, the devices (`1 x cpu (cpu)`), the host CPU and the malloc in use."""
  import flax
  import optax
  import orbax.checkpoint
  return {"versions": {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__
                       if hasattr(jax.lib, "__version__") else jax.__version__, "flax": flax.__version__,
                       "optax": optax.__version__, "orbax-checkpoint": orbax.checkpoint.__version__,
                       "numpy": np.__version__},
          "device": device_name(),
          "cpu": cpu_name(), "malloc": xla.host_malloc()}


def device_name() -> str:
  """The devices this process computes on, e.g. '1 x cpu (cpu)' or '8 x NVIDIA H100 80GB HBM3 (gpu)'."""
  return f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})"


def unused_accelerator() -> str | None:
  """What to say when this machine has an accelerator that JAX does not use (it sees only the CPU, as with the
  CPU-only jaxlib installed), or None."""
  if jax.default_backend() != "cpu":
    return None
  import shutil
  import subprocess
  found = None
  if shutil.which("nvidia-smi") or pathlib.Path("/dev/nvidia0").exists():
    try:
      gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
      gpus = []
    found = f"{len(gpus)} NVIDIA GPU(s)" if gpus else None
    build = "ACCEL=cuda12 or cuda13"
  elif any(pathlib.Path("/dev").glob("accel[0-9]*")):
    found, build = "a TPU", "ACCEL=tpu"
  if found is None:
    return None
  return (f"this machine has {found} but JAX sees only the CPU, so this runs on the CPU: install JAX's build for "
          f"it (`make train` does, detecting it, or name it with {build})")


def cpu_name() -> str:
  """The host CPU's model name and core count, e.g. 'AMD EPYC, 2 cores'."""
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        name = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{name}, {os.cpu_count()} cores"


def write_text(path, text: str) -> None:
  """`text` written to `path.tmp`, then renamed to `path` (its folder made if missing)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def write_json(path, obj, *, indent: int = 2) -> None:
  """`obj` as indented JSON and a newline, through `write_text`; numpy and jax scalars and arrays become numbers
  and lists."""
  write_text(path, json.dumps(obj, indent=indent, default=_plain) + "\n")


def _plain(o):
  if isinstance(o, (np.generic, np.ndarray, jax.Array)):
    return np.asarray(o).tolist()
  raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")
