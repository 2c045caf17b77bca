"""Lowering every registered model's scanned training step for GPUs and TPUs from this CPU: in float32 on one
device in `make test` (tests/test_models.py), and, run as a script under 2 simulated devices (`make
test-distributed`, tests/test_parallel.py), in bfloat16, as a population of 2, and with `jit` and `shard_map` over
both devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/lowering.py
"""

import functools
import re
import sys

import jax
import numpy as np
from conftest import small_config  # tests/ is this script's directory, so on sys.path

from genjax import kernels, parallel, train
from genjax.models import MODELS
from genjax.state import compute_in

PLATFORMS = ("cuda", "tpu")
CPU_KERNELS = ("canonical_conv", "conv_4x4_stride2", "conv_taps", "conv_transpose_4x4_s2")  # kernels.enabled()'s


def lower(name: str, dtype: str = "float32", population_size: int = 1, strategy: str = "none", k: int = 2):
  """The kernels named in the step's program traced as for an accelerator, and its StableHLO for each of
  PLATFORMS (dict platform -> text)."""
  c = small_config(name)
  c.population, c.dtype = population_size, dtype
  images = np.zeros((256, 28, 28, 1), np.uint8)
  family = train.checked_family(MODELS[name], c, images)
  per_step = family.examples_per_step(c)
  layout = parallel.plan(strategy, per_step, c.train.batch_size)
  with kernels.platform(PLATFORMS[0]):
    state = compute_in(train.init(family, c, jax.random.PRNGKey(0), images.shape[1:]), dtype)
    step = functools.partial(family.train_step, **c.step)
    fn = layout.compile(train.make_chunk, step, k)
    args = layout.put((state, images, np.zeros((256,), np.int32)))
    idx = layout.put_indices(np.zeros((k, per_step), np.int32))
    traced = fn.trace(*args, idx, jax.random.PRNGKey(1))
  found = sorted(set(re.findall(r"custom_vjp_call\[\s*name=(\w+)", str(traced.jaxpr))) & set(CPU_KERNELS))
  return found, {p: traced.lower(lowering_platforms=(p,)).as_text() for p in PLATFORMS}


VARIANTS = {"bfloat16": dict(dtype="bfloat16"), "population": dict(population_size=2),
            "jit": dict(strategy="jit"), "shard_map": dict(strategy="shard_map")}


def main() -> int:
  assert jax.device_count() == 2, jax.devices()
  for variant, kwargs in VARIANTS.items():
    for name in sorted(MODELS):
      found, texts = lower(name, **kwargs)
      assert not found, f"{name} ({variant}): CPU kernels {found} in an accelerator's program"
      for p, text in texts.items():
        assert text.startswith("module @jit_") and "stablehlo.while" in text, (name, variant, p)
        if "strategy" in kwargs:
          assert "mhlo.num_partitions = 2" in text, (name, variant, p)
      print(f"{variant} {name}: lowered for {', '.join(texts)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
