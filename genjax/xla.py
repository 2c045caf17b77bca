"""Which XLA:CPU library kernels compile genjax's programs: the top-level config key `xla_cpu_ynn`.

XLA:CPU hands dots, convolutions and reductions to YNNPACK by default (jaxlib 0.10). genjax's conv models run
faster with XLA's Eigen convolutions, and two small dense models (ae_dense, ae_linear) and the DCGAN faster with no
YNNPACK at all; docs/kernels.md has the measurements. So:

- `dots` (the default): YNNPACK for dots and reductions, Eigen for convolutions;
- `none`: no YNNPACK (the experiments of ae_dense, ae_linear and gan set this);
- `all`: XLA's own default.

The choice is a per-program compiler option (`jax.jit(..., compiler_options=...)`), not a process-wide XLA_FLAGS
entry, so it touches only genjax's programs; a researcher can pass `compiler_options(...)` to their own `jax.jit`.
It applies on the CPU backend only. A `--xla_cpu_experimental_ynn_fusion_type` in XLA_FLAGS wins over it, and a
jaxlib that does not know the option compiles with its defaults.

Host memory (`host_malloc`): XLA:CPU allocates each run's temporary buffer anew, one block for all of a program's
intermediates. glibc serves a block over 32 MB with a fresh mmap, whose 4 KiB pages then fault in one by one on
first touch, every step. `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc 2.35+, read when the process starts; the
Makefile exports it) has malloc ask for transparent huge pages, 512x fewer faults; it speeds up the steps whose
temporary buffer is over 32 MB (docs/kernels.md: which, and by how much) and leaves the others unchanged.
"""

from __future__ import annotations

import functools
import logging
import os

import jax

OPTION = "xla_cpu_experimental_ynn_fusion_type"
MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"  # the Makefile exports GLIBC_TUNABLES with this value
# The values of the DebugOptions' repeated LibraryFusionType field; jaxlib 0.10's default is individual dots,
# individual convolutions and reductions.
CPU_YNN = {
    "dots": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE",
    "none": "",
    "all": None,
}
DEFAULT_YNN = "dots"


def ynn_of(config) -> str:
  """A config's `xla_cpu_ynn`; configs saved before the key existed compiled with the default."""
  return config.get("xla_cpu_ynn", DEFAULT_YNN)


@functools.cache
def _supported() -> bool:
  """Whether this jaxlib accepts the option (an unknown one fails the compile instead of being ignored)."""
  try:
    jax.jit(lambda x: x + 1, compiler_options={OPTION: CPU_YNN["dots"]}).lower(1.0).compile()
    return True
  except Exception as e:  # noqa: BLE001 -- jaxlib raises its own runtime error types
    logging.warning("genjax: this jaxlib does not take %s (%s); compiling with its defaults", OPTION,
                    str(e).splitlines()[0][:200])
    return False


def compiler_options(ynn: str = DEFAULT_YNN) -> dict | None:
  """`compiler_options` for jax.jit: YNNPACK's share of a CPU program (`dots`, `none`, `all`), or None where
  nothing is to be set (another backend, `all`, the user's own XLA_FLAGS, or a jaxlib without the option)."""
  if ynn not in CPU_YNN:
    raise ValueError(f"xla_cpu_ynn must be one of {', '.join(CPU_YNN)}, got '{ynn}'")
  if CPU_YNN[ynn] is None or jax.default_backend() != "cpu" or OPTION in os.environ.get("XLA_FLAGS", ""):
    return None
  return {OPTION: CPU_YNN[ynn]} if _supported() else None


def host_malloc() -> str:
  """How malloc backs this process's large host buffers, for benchmark records: `hugetlb` when GLIBC_TUNABLES
  asks for transparent huge pages (glibc.malloc.hugetlb=1 or 2), else `default`."""
  tunables = dict(t.split("=", 1) for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if "=" in t)
  return "hugetlb" if tunables.get("glibc.malloc.hugetlb") in ("1", "2") else "default"
