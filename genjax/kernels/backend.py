"""The one decision of when genjax's CPU kernels replace XLA's own ops."""

from __future__ import annotations

import contextlib
import contextvars

import jax

_PLATFORM: contextvars.ContextVar[str | None] = contextvars.ContextVar("genjax_kernels_platform", default=None)


@contextlib.contextmanager
def platform(name: str):
  """Traces as for the platform `name` ('cpu', 'cuda', 'rocm', 'tpu') rather than for JAX's default backend, inside
  the block: for a program lowered for another platform than this process's, e.g. a GPU's from a CPU with
  `jax.jit(f).trace(*args).lower(lowering_platforms=("cuda",))`."""
  token = _PLATFORM.set(name)
  try:
    yield
  finally:
    _PLATFORM.reset(token)


def enabled() -> bool:
  """Whether the CPU kernels compute the ops that have them: True on the CPU backend, False elsewhere (GPUs and
  TPUs run XLA's own ops), or as `platform` says inside its block. Read at trace time, so a program traced for one
  backend keeps its choice.

  What it switches: `conv_general_dilated` with `impl="auto"` takes the CPU form it picks rather than lax's conv,
  and `impl="lax"` is `canonical_conv` rather than lax's conv; `conv_transpose` of a SAME 4x4 stride-2 conv is
  `conv_transpose_4x4_s2` rather than lax.conv_transpose; `channel_sums` is a matmul with a row of ones rather than
  jnp.sum; `taps_pays` is False everywhere else. Not switched, because they are the layers' numerics rather than a
  speed choice: `dot_general` (float32 accumulation of bfloat16 matmuls, as matmul units do), `batch_norm_train`
  (nn.BatchNorm's statistics with a closed-form backward pass) and a conv `impl` asked for by name."""
  return (_PLATFORM.get() or jax.default_backend()) == "cpu"
