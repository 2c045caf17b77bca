"""nn.ConvTranspose's SAME 4x4 stride-2 transposed conv in the forms XLA:CPU runs fast, equal to lax.conv_transpose
in value and both gradients, and `conv_transpose`, which picks it where kernels are enabled. Flax's ConvTranspose
has no hook for its conv, so the layer that uses this is a drop-in module (nets.ConvTranspose4x4)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax.kernels.backend import enabled
from genjax.kernels.conv import DN, conv_taps, s2_weight_grad, taps_pays, xla_conv


def _phase_kernel(kernel):
  """[4, 4, C, F] -> [2, 2, C, 4F]: tap (2a + i, 2b + j) becomes tap (a, b) of channel group (i, j)."""
  c, f = kernel.shape[2:]
  return kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * f)


def _interleave_phases(o):
  """[B, H + 1, W + 1, 4F] -> [B, 2H, 2W, F]: output pixel (2h + i, 2w + j) is o[:, h + i, w + j] of group (i, j)."""
  b, h, w, f = o.shape[0], o.shape[1] - 1, o.shape[2] - 1, o.shape[3] // 4
  o = o.reshape(b, h + 1, w + 1, 2, 2, f)
  y = jnp.stack([jnp.stack([o[:, i:i + h, j:j + w, i, j] for j in range(2)], 3) for i in range(2)], 3)
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, f)  # [B, H, i, W, j, F]


def _phase_conv_transpose(x, kernel):
  """nn.ConvTranspose's SAME 4x4 stride-2 transposed conv (lax.conv_transpose, kernel not flipped), exactly, as one
  2x2 stride-1 conv to 4F features over the input padded by one pixel: output pixel (2h + i, 2w + j) reads input
  rows h + i - 1, h + i and columns w + j - 1, w + j through kernel taps (i + 2a, j + 2b), which is tap (a, b) of
  channel group (i, j) at conv position (h + i, w + j). That conv runs as `conv_taps` where `taps_pays` for 4F
  features, else as `xla_conv`. It reads 2x2 taps per output pixel (the sub-pixel layer's conv reads 3x3)."""
  f = kernel.shape[-1]
  k = _phase_kernel(kernel)
  if taps_pays(4 * f, (1, 1)):  # SAME for a 2x2 kernel pads (0, 1): with (1, 0) more, the VALID conv of (1, 1)
    o = conv_taps(jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0))), k)
  else:
    o = xla_conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (1, 1), "VALID")
  return _interleave_phases(o)


@jax.custom_vjp
def conv_transpose_4x4_s2(x_BxHxWxC, kernel):
  """lax.conv_transpose(x, kernel, (2, 2), "SAME") in NHWC / HWIO with `kernel` [4, 4, C, F] (nn.ConvTranspose(F,
  (4, 4), strides=(2, 2), padding="SAME")), equal to it in value and both gradients, each pass in the form XLA:CPU
  runs fastest: the forward pass through `_phase_conv_transpose`, both gradients as those of the 4x4 stride-2 conv
  whose input gradient the transposed conv is: the input gradient is that conv of dy, the weight gradient that
  conv's weight gradient (`s2_weight_grad`), where XLA's own transposed conv runs its weight gradient as an
  input-dilated conv far slower than its forward pass. Chosen by `conv_transpose` where kernels are enabled."""
  return _phase_conv_transpose(x_BxHxWxC, kernel)


def _conv_transpose_fwd(x, kernel):
  return conv_transpose_4x4_s2(x, kernel), (x, kernel)


def _conv_transpose_bwd(res, dy):
  x, kernel = res
  # The transposed conv is the input gradient of the SAME 4x4 stride-2 conv with the kernel flipped and C, F swapped
  # (k2): its input gradient is that conv of dy, and its weight gradient that conv's weight gradient at (dy, x).
  k2 = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
  dk2 = s2_weight_grad(dy, x)
  return xla_conv(dy, k2, (2, 2)), jnp.flip(dk2.swapaxes(2, 3), (0, 1))


conv_transpose_4x4_s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def conv_transpose(x_BxHxWxC, kernel, strides, padding):
  """lax.conv_transpose(x, kernel, strides, padding) in NHWC / HWIO (nn.ConvTranspose's conv, kernel not flipped):
  `conv_transpose_4x4_s2` for a 4x4 kernel, strides (2, 2) and SAME padding where kernels are `enabled()`, lax's
  own otherwise."""
  if enabled() and kernel.shape[:2] == (4, 4) and tuple(strides) == (2, 2) and padding == "SAME":
    return conv_transpose_4x4_s2(x_BxHxWxC, kernel)
  return jax.lax.conv_transpose(x_BxHxWxC, kernel, tuple(strides), padding, dimension_numbers=DN)
