"""Training-step throughput of every registered model, per steps-per-dispatch and upsampling layer.

Usage:  .venv/bin/python benchmarks/throughput.py [--models gan,ae] [--batch 128] [--k 1,4] [--out results.json]
Runs the training loop's own chunk function on synthetic uint8 data (no TensorFlow or TFDS needed) and reports
images/s as the median of repeats after a compile, with the device named. The full suite is issue #5.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from genjax import config as cfg
from genjax import xla
from genjax.models import MODELS
from genjax.train import make_chunk


def measure(name: str, batch: int, k: int, upsample: str, min_seconds: float = 5.0) -> dict:
  c = cfg.model_config(name)
  c.model.upsample = upsample
  family = MODELS[name]
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (4096, 28, 28, 1), dtype=np.uint8))
  labels = jnp.asarray(rng.integers(0, 10, (4096,), dtype=np.int32))
  state = family.init_state(jax.random.PRNGKey(0), c, {"image": jnp.zeros((batch, 28, 28, 1))})
  run = jax.jit(make_chunk(functools.partial(family.train_step, **c.step), k), donate_argnums=0,
                compiler_options=xla.compiler_options(xla.ynn_of(c)))  # as make train compiles it
  idx = jnp.asarray(rng.integers(0, 4096, (k, batch), dtype=np.int32))
  key = jax.random.PRNGKey(1)
  t = time.perf_counter()
  state, m = run(state, images, labels, idx, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  times, start = [], time.perf_counter()
  while time.perf_counter() - start < min_seconds or len(times) < 3:
    t = time.perf_counter()
    state, m = run(state, images, labels, idx, key)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t)
  return {"model": name, "batch": batch, "steps_per_dispatch": k, "upsample": upsample,
          "images_per_sec": batch * k / statistics.median(times), "compile_s": compile_s, "repeats": len(times)}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default=",".join(sorted(MODELS)))
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--k", default="1,4", help="steps per dispatch to compare")
  p.add_argument("--upsample", default="subpixel,transpose")
  p.add_argument("--out", default="")
  a = p.parse_args()
  device = jax.devices()[0]
  header = {"device": device.device_kind, "platform": device.platform,
            "cpu": platform.processor() or platform.machine(), "jax": jax.__version__}
  print(json.dumps(header))
  records = []
  for name in a.models.split(","):
    for up in a.upsample.split(","):
      for k in map(int, a.k.split(",")):
        r = measure(name, a.batch, k, up)
        records.append(r)
        print(f"{name:5s} upsample={up:9s} K={k:<3d} {r['images_per_sec']:8.0f} images/s  "
              f"(compile {r['compile_s']:.1f} s)", flush=True)
  if a.out:
    with open(a.out, "w") as f:
      json.dump({**header, "records": records}, f, indent=2)


if __name__ == "__main__":
  main()
