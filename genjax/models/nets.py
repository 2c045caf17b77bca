"""Linen building blocks shared by the model families: convs, pooling, conv encoder, conv decoder, 2x upsampling."""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

UPSAMPLE = ("transpose", "subpixel")
CONV_IMPLS = ("auto", "lax", "patches", "s2d", "taps")
DN = ("NHWC", "HWIO", "NHWC")
# On XLA:CPU, `conv_taps` beats XLA's conv for stride-1 3x3 convs to few features (2-core EPYC, batch 128, all three
# passes: 32 -> 4 features 2.2x, 64 -> 4 2.7x, 32 -> 8 and 32 -> 12 1.2x) but not from 64 to 12 or 16 (0.9x).
TAPS_MAX_FEATURES = 4


def _taps_pays(features: int, strides) -> bool:
  """Whether `conv_taps` is the faster form of a conv to `features` with `strides` here: on CPU, stride 1, few
  features."""
  return jax.default_backend() == "cpu" and tuple(strides) == (1, 1) and features <= TAPS_MAX_FEATURES


LOW_PRECISION = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _dense_dims(lhs, rhs, dimension_numbers) -> bool:
  """Whether `dimension_numbers` is nn.Dense's: the last axis of `lhs` against the first of a 2-D `rhs`."""
  (lc, rc), (lb, rb) = dimension_numbers
  return rhs.ndim == 2 and tuple(lc) == (lhs.ndim - 1,) and tuple(rc) == (0,) and not tuple(lb) and not tuple(rb)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _accumulating_dense(x, kernel, precision):
  y = jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                          preferred_element_type=jnp.float32)
  return y.astype(x.dtype)


def _accumulating_dense_fwd(x, kernel, precision):
  return _accumulating_dense(x, kernel, precision), (x, kernel)


def _accumulating_dense_bwd(precision, res, dy):
  x, kernel = res
  f32 = jnp.float32
  dx = jax.lax.dot_general(dy, kernel, (((dy.ndim - 1,), (1,)), ((), ())), precision=precision,
                           preferred_element_type=f32)
  batch = tuple(range(x.ndim - 1))
  dk = jax.lax.dot_general(x, dy, ((batch, batch), ((), ())), precision=precision, preferred_element_type=f32)
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


_accumulating_dense.defvjp(_accumulating_dense_fwd, _accumulating_dense_bwd)


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
  """`lax.dot_general` as nn.Dense's `dot_general`: where both operands are bfloat16 (or float16), no result type is
  asked for and the contraction is Dense's, the products accumulate in float32, forward and backward, and each
  result is rounded to the operands' dtype once. Any other call is lax.dot_general's, so float32 models are
  unchanged. Measured on the 2-core EPYC (AVX512_BF16, jax 0.10.2): XLA:CPU runs a bfloat16 matmul that
  accumulates into float32 at 238-345 GFLOP/s for Dense shapes at batch 128 and 372 at 2048^2 (float32: 160-194 and
  210), but one with a bfloat16 result at float32 speed or below. `dtype=bfloat16` steps at batch 128, against
  plain nn.Dense (interleaved, 16 per dispatch): sparse_ae 1.50x, wgan 1.39x, iwae 1.10x, gan_mlp 1.08x, vae_dense
  and dae 0.97x. On GPUs bfloat16 operands with float32 accumulation are what the matmul units do."""
  if (preferred_element_type is None and lhs.dtype == rhs.dtype and lhs.dtype in LOW_PRECISION
      and _dense_dims(lhs, rhs, dimension_numbers)):
    return _accumulating_dense(lhs, rhs, precision)
  return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                             preferred_element_type=preferred_element_type)


# nn.Dense (same parameters, names and float32 arithmetic) whose low-precision matmuls accumulate in float32.
Dense = functools.partial(nn.Dense, dot_general=dot_general)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA's SAME padding of one spatial axis: (low, high)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def patches(x_BxHxWxC, kernel: tuple[int, int], strides: tuple[int, int], padding=None):
  """[B, H', W', kh*kw*C]: the receptive field of each output pixel, ordered (i, j, c) like a flattened [kh, kw, C, F]
  conv kernel, from kh*kw strided slices (whose gradient is a pad and an add). `padding`: ((top, bottom), (left,
  right)), or None for SAME."""
  _, h, w, _ = x_BxHxWxC.shape
  (kh, kw), (sh, sw) = kernel, strides
  ph, pw = padding if padding is not None else (same_padding(h, kh, sh), same_padding(w, kw, sw))
  x = jnp.pad(x_BxHxWxC, ((0, 0), ph, pw, (0, 0)))
  ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  cols = [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def space_to_depth(x_BxHxWxC):
  """[B, H, W, C] -> [B, H/2, W/2, 4C], the inverse of depth_to_space: pixel (2h + i, 2w + j) becomes channel group
  (i, j)."""
  b, h, w, c = x_BxHxWxC.shape
  return x_BxHxWxC.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)


def _xla_conv(x, kernel, strides, pads, lhs_dilation=None, rhs_dilation=None):
  return jax.lax.conv_general_dilated(x, kernel, strides, pads, lhs_dilation, rhs_dilation, dimension_numbers=DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def canonical_conv(x_BxHxWxC, kernel, strides, pads):
  """lax.conv_general_dilated(x, kernel, strides, pads) in NHWC / HWIO, whose gradients are NHWC / HWIO convs too.
  XLA:CPU runs a conv with Eigen only in that canonical form, and its ConvCanonicalization pass rewrites other
  forms (JAX's weight gradient, with batch and features swapped; its input gradient, with the kernel's I and O
  swapped) only in the entry computation: inside a while loop (`lax.scan`) they fell to a naive loop, about 20x
  slower (the conv AE's step at batch 128 on a 2-core EPYC: 2905 images/s one per dispatch, 189 in 16 per
  dispatch; jax-ml/jax#12868 shows the same for a channels-first forward conv). Here the gradients are written with
  explicit transposes, canonical wherever they run (16 per dispatch: 5695 images/s). `pads`: ((top, bottom), (left,
  right))."""
  return _xla_conv(x_BxHxWxC, kernel, strides, pads)


def _canonical_conv_fwd(x, kernel, strides, pads):
  return canonical_conv(x, kernel, strides, pads), (x, kernel)


def _conv_input_grad(dy, kernel, x_size, strides, pads):
  """The gradient of canonical_conv(x, kernel, strides, pads) with respect to x ([B, *x_size, C]): dy dilated by the
  strides, convolved with the kernel flipped and C, F swapped."""
  ks, outs = kernel.shape[:2], dy.shape[1:3]
  dx_pads = [(k - 1 - lo, n - (o - 1) * s - 1 + lo) for k, n, o, s, (lo, _) in zip(ks, x_size, outs, strides, pads)]
  return _xla_conv(dy, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), (1, 1), dx_pads, lhs_dilation=strides)


def _conv_weight_grad(x, dy, kernel_size, strides, pads):
  """The gradient of canonical_conv(x, kernel, strides, pads) with respect to its kernel: dk[i, j, c, f] = sum over
  b, h, w of x[b, s h + i - top, s w + j - left, c] dy[b, h, w, f], a conv of x with C as the batch and B as the
  features by dy dilated by the strides, with B as its input features."""
  sizes, outs = x.shape[1:3], dy.shape[1:3]
  dk_pads = [(lo, (o - 1) * s + k - n - lo) for k, n, o, s, (lo, _) in zip(kernel_size, sizes, outs, strides, pads)]
  dk = _xla_conv(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), (1, 1), dk_pads, rhs_dilation=strides)
  return dk.transpose(1, 2, 0, 3)


def _canonical_conv_bwd(strides, pads, res, dy):
  x, kernel = res
  return (_conv_input_grad(dy, kernel, x.shape[1:3], strides, pads),
          _conv_weight_grad(x, dy, kernel.shape[:2], strides, pads))


canonical_conv.defvjp(_canonical_conv_fwd, _canonical_conv_bwd)


def _explicit_pads(x_size, kernel_size, strides, padding):
  """((top, bottom), (left, right)) for "SAME", "VALID" or explicit padding."""
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(x_size, kernel_size, strides, padding)
  return tuple(tuple(p) for p in padding)


def _lax_conv(x, kernel, strides, padding="SAME"):
  """XLA's conv; on CPU `canonical_conv` (the same values and gradients), elsewhere lax's own."""
  if jax.default_backend() != "cpu":
    return _xla_conv(x, kernel, strides, padding)
  return canonical_conv(x, kernel, tuple(strides), _explicit_pads(x.shape[1:3], kernel.shape[:2], strides, padding))


def _s2d_conv(x, kernel):
  """A SAME 4x4 stride-2 conv of an even-sized image, exactly, as a 2x2 stride-1 VALID conv over space_to_depth of
  the input padded by one pixel: kernel tap (2a + i, 2b + j) becomes tap (a, b) of channel group (i, j)."""
  c, f = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, f)
  return _lax_conv(space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))), k, (1, 1), "VALID")


@jax.custom_vjp
def conv_4x4_stride2(x_BxHxWxC, kernel):
  """The SAME 4x4 stride-2 conv of an even-sized image, each pass in the form XLA:CPU runs fastest (2-core EPYC,
  batch 128, Eigen convs): the forward pass over space_to_depth for inputs of fewer than 8 channels (MNIST into 32
  features: 1.6 -> 0.7 ms), the input gradient always through space_to_depth (32 -> 64 features at 14x14:
  8.0 -> 3.8 ms), and the weight gradient as XLA's own strided conv's."""
  return _s2d_conv(x_BxHxWxC, kernel) if x_BxHxWxC.shape[-1] < 8 else _lax_conv(x_BxHxWxC, kernel, (2, 2))


def _conv_4x4_stride2_fwd(x, kernel):
  return conv_4x4_stride2(x, kernel), (x, kernel)


def _s2_weight_grad(x, dy):
  """The kernel gradient of the SAME 4x4 stride-2 conv of x whose output gradient is dy."""
  return _conv_weight_grad(x, dy, (4, 4), (2, 2), _explicit_pads(x.shape[1:3], (4, 4), (2, 2), "SAME"))


def _conv_4x4_stride2_bwd(res, dy):
  x, kernel = res
  dx = jax.vjp(lambda v: _s2d_conv(v, kernel), x)[1](dy)[0]  # dropped by XLA where the input needs none (images)
  return dx, _s2_weight_grad(x, dy)


conv_4x4_stride2.defvjp(_conv_4x4_stride2_fwd, _conv_4x4_stride2_bwd)


def _phase_kernel(kernel):
  """[4, 4, C, F] -> [2, 2, C, 4F]: tap (2a + i, 2b + j) becomes tap (a, b) of channel group (i, j)."""
  c, f = kernel.shape[2:]
  return kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 4, 1, 3, 5).reshape(2, 2, c, 4 * f)


def _phase_conv_transpose(x, kernel):
  """nn.ConvTranspose's SAME 4x4 stride-2 transposed conv (lax.conv_transpose, kernel not flipped), exactly, as one
  2x2 stride-1 conv to 4F features over the input padded by one pixel: output pixel (2h + i, 2w + j) reads input
  rows h + i - 1, h + i and columns w + j - 1, w + j through kernel taps (i + 2a, j + 2b), which is tap (a, b) of
  channel group (i, j) at conv position (h + i, w + j). A conv to at most TAPS_MAX_FEATURES / 4 features runs as
  `conv_taps` on CPU. 2x2 taps per output pixel against the sub-pixel layer's 3x3: 1.31x the transposed conv's
  FLOPs on a 7x7 input, the sub-pixel conv 2.25x."""
  b, h, w, _ = x.shape
  f = kernel.shape[-1]
  k = _phase_kernel(kernel)
  if _taps_pays(4 * f, (1, 1)):  # SAME for a 2x2 kernel pads (0, 1): with (1, 0) more, the VALID conv of (1, 1)
    o = conv_taps(jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0))), k)
  else:
    o = _lax_conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), k, (1, 1), "VALID")
  return _interleave_phases(o)


def _interleave_phases(o):
  """[B, H + 1, W + 1, 4F] -> [B, 2H, 2W, F]: output pixel (2h + i, 2w + j) is o[:, h + i, w + j] of group (i, j)."""
  b, h, w, f = o.shape[0], o.shape[1] - 1, o.shape[2] - 1, o.shape[3] // 4
  o = o.reshape(b, h + 1, w + 1, 2, 2, f)
  y = jnp.stack([jnp.stack([o[:, i:i + h, j:j + w, i, j] for j in range(2)], 3) for i in range(2)], 3)
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, f)  # [B, H, i, W, j, F]


def _lax_conv_transpose(x, kernel):
  return jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=DN)


@jax.custom_vjp
def conv_transpose_4x4_s2(x_BxHxWxC, kernel):
  """nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding="SAME") of x with `kernel` [4, 4, C, F], each pass in the
  form XLA:CPU runs fastest (2-core EPYC, batch 128, the DCGAN generator's 128 -> 64 features from 7x7): the forward
  pass through `_phase_conv_transpose` (11.2 ms against XLA's 13.7), both gradients as those of the 4x4 stride-2 conv
  whose input gradient the transposed conv is: the input gradient that conv of dy (8.8 ms against 7.9), the weight
  gradient its weight gradient (9.4 ms against 276; the phase conv's own: 14.9). The backward pass of the whole layer
  takes 18.9 ms against XLA's 289."""
  return _phase_conv_transpose(x_BxHxWxC, kernel)


def _conv_transpose_fwd(x, kernel):
  return conv_transpose_4x4_s2(x, kernel), (x, kernel)


def _conv_transpose_bwd(res, dy):
  x, kernel = res
  # The transposed conv is the input gradient of the SAME 4x4 stride-2 conv with the kernel flipped and C, F swapped
  # (k2): its input gradient is that conv of dy, and its weight gradient that conv's weight gradient at (dy, x).
  k2 = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
  dk2 = _s2_weight_grad(dy, x)
  return _lax_conv(dy, k2, (2, 2)), jnp.flip(dk2.swapaxes(2, 3), (0, 1))


conv_transpose_4x4_s2.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class ConvTranspose4x4(nn.Module):
  """nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME") with its parameters (`kernel` [4, 4, C, F],
  `bias` [F]) and initializers, so checkpoints move between the two; on CPU it computes as
  `conv_transpose_4x4_s2` (XLA:CPU's own transposed conv ran its weight gradient 17-20x slower than its forward
  pass); elsewhere (cuDNN) as lax.conv_transpose."""
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, x.shape[-1], self.features))
    y = conv_transpose_4x4_s2(x, kernel) if jax.default_backend() == "cpu" else _lax_conv_transpose(x, kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def _tap_matrix(kernel):
  """[kh, kw, C, F] -> [C, kh*kw*F], every tap's kernel side by side, ordered (i, j, f)."""
  kh, kw, c, f = kernel.shape
  return kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * f)


@jax.custom_vjp
def conv_taps(x_BxHxWxC, kernel):
  """The SAME stride-1 conv as one matmul and a sum: t = x @ [C, kh*kw*F] holds every tap's contribution at the
  pixel it reads, and output pixel (h, w) sums tap (i, j) of pixel (h + i - pad, w + j - pad). It suits convs with
  few outputs, where XLA:CPU's conv runs far below the matmul peak: the subpixel layer that makes a grey image
  (3x3, 32 or 64 features -> 4) took 5.9 / 12.0 ms per step in its three passes as XLA's conv at batch 128 (2-core
  EPYC) and 2.7 / 4.4 ms this way. The backward pass is matmuls too, over the kh*kw shifts of the output gradient
  (F channels each): input gradient shifts(dy) @ W^T, weight gradient shifts(dy)^T @ x. Products accumulate in
  float32 (bfloat16 operands too, like `dot_general`), and results are rounded to the operands' dtype once."""
  kh, kw, _, f = kernel.shape
  b, h, w, _ = x_BxHxWxC.shape
  t = jnp.matmul(x_BxHxWxC, _tap_matrix(kernel), preferred_element_type=jnp.float32).reshape(b, h, w, kh, kw, f)
  t = jnp.pad(t, ((0, 0), same_padding(h, kh, 1), same_padding(w, kw, 1), (0, 0), (0, 0), (0, 0)))
  return sum(t[:, i:i + h, j:j + w, i, j, :] for i in range(kh) for j in range(kw)).astype(x_BxHxWxC.dtype)


def _conv_taps_fwd(x, kernel):
  return conv_taps(x, kernel), (x, kernel)


def _conv_taps_bwd(res, dy):
  x, kernel = res
  kh, kw, c, f = kernel.shape
  _, h, w, _ = x.shape
  (top, _), (left, _) = same_padding(h, kh, 1), same_padding(w, kw, 1)
  # Tap (i, j) of pixel p fed output pixel p - (i, j) + pad: its gradient is dy shifted by that much.
  dy = jnp.pad(dy, ((0, 0), (kh - 1 - top, top), (kw - 1 - left, left), (0, 0)))
  shifts = jnp.concatenate([dy[:, kh - 1 - i:kh - 1 - i + h, kw - 1 - j:kw - 1 - j + w, :]
                            for i in range(kh) for j in range(kw)], axis=-1)  # [B, H, W, kh*kw*F]
  dx = jnp.matmul(shifts, _tap_matrix(kernel).T, preferred_element_type=jnp.float32)
  # shifts^T @ x rather than x^T @ shifts: XLA:CPU copies the transposed operand, and shifts is a fresh concatenation
  # anyway (the conv AE's step 3.6% faster this way, interleaved at batch 128).
  dk = jax.lax.dot_general(shifts, x, (((0, 1, 2), (0, 1, 2)), ((), ())),
                           preferred_element_type=jnp.float32)  # [kh*kw*F, C]
  return dx.astype(x.dtype), dk.reshape(kh, kw, f, c).transpose(0, 1, 3, 2).astype(kernel.dtype)


conv_taps.defvjp(_conv_taps_fwd, _conv_taps_bwd)


class Conv(nn.Module):
  """A SAME-padded conv with nn.Conv's parameters (`kernel` [kh, kw, C, F], `bias` [F]) and its initializers, so
  checkpoints move between implementations. `patches` computes it as one matmul over `patches(x)`: on XLA:CPU its
  weight gradient is a matmul too, where the conv's ran far below the matmul peak (2-core EPYC, classifier step at
  batch 128: 638 -> 850 images/s). `s2d`: a 4x4 stride-2 conv of an even-sized image as `conv_4x4_stride2`.
  `taps`: a stride-1 conv as `conv_taps`. `auto` picks, on CPU, `s2d` where it applies, `taps` for stride-1 convs
  to at most TAPS_MAX_FEATURES features, `patches` for other stride-1 convs and XLA's conv otherwise; XLA's conv
  (cuDNN) elsewhere."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  use_bias: bool = True
  impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    c = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, c, self.features))
    s2d = (kh, kw) == (4, 4) and tuple(self.strides) == (2, 2) and x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0
    impl = self.impl
    if impl == "auto":
      cpu = jax.default_backend() == "cpu"
      impl = ("lax" if not cpu else "s2d" if s2d else "taps" if _taps_pays(self.features, self.strides)
              else "patches" if tuple(self.strides) == (1, 1) else "lax")
    if impl == "patches":
      y = patches(x, (kh, kw), self.strides) @ kernel.reshape(kh * kw * c, self.features)
    elif impl == "lax":
      y = _lax_conv(x, kernel, self.strides)
    elif impl == "s2d":
      if not s2d:
        raise ValueError(f"impl 's2d' is a 4x4 stride-2 conv of an even-sized image, got kernel {self.kernel_size}, "
                         f"strides {self.strides}, input {x.shape[1:3]}")
      y = conv_4x4_stride2(x, kernel)
    elif impl == "taps":
      if tuple(self.strides) != (1, 1):
        raise ValueError(f"impl 'taps' is a stride-1 conv, got strides {self.strides}")
      y = conv_taps(x, kernel)
    else:
      raise ValueError(f"unknown conv impl '{self.impl}'; expected one of {CONV_IMPLS}")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def channel_sums(x_NxC):
  """[N, C] -> [C], the sum over rows. On CPU a matmul with a row of ones: XLA:CPU (YNNPACK off) splits a long
  reduction into a reduce-window and a reduce, which ran the DCGAN's BatchNorm sums at a few GB/s (2-core EPYC,
  batch 128: 21 of 167 ms per step in the trace; the step 5-6% faster with `BatchNorm` below)."""
  if jax.default_backend() == "cpu":
    return jnp.ones((x_NxC.shape[0],), x_NxC.dtype) @ x_NxC
  return jnp.sum(x_NxC, axis=0)


def _bn_stats(x2, eps):
  mean, mean2 = channel_sums(x2) / x2.shape[0], channel_sums(x2 * x2) / x2.shape[0]
  var = jnp.maximum(0.0, mean2 - mean * mean)
  return mean, var, jax.lax.rsqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x_NxC, scale, bias, eps):
  """BatchNorm of rows [N, C] on their own statistics, as Flax's nn.BatchNorm computes it (float32 statistics,
  var = E[x^2] - E[x]^2 clipped at 0): returns (y, mean, var). Both passes make their per-channel sums with
  `channel_sums`, and the backward pass is the closed form
  dx = scale / std * (dy - mean(dy) - xhat mean(dy xhat)) (plus the terms of the mean and var outputs)."""
  return _bn_fwd(x_NxC, scale, bias, eps)[0]


def _bn_fwd(x, scale, bias, eps):
  mean, var, rstd = _bn_stats(x, eps)
  return ((x - mean) * (rstd * scale) + bias, mean, var), (x, mean, rstd, scale)


def _bn_bwd(eps, res, cts):
  x, mean, rstd, scale = res
  dy, dmean, dvar = cts
  n = x.shape[0]
  xhat = (x - mean) * rstd
  dbias, dscale = channel_sums(dy), channel_sums(dy * xhat)
  dx = (scale * rstd) * (dy - dbias / n - xhat * (dscale / n)) + dmean / n + (2.0 / n) * dvar * (x - mean)
  return dx, dscale, dbias


batch_norm_train.defvjp(_bn_fwd, _bn_bwd)


class BatchNorm(nn.Module):
  """nn.BatchNorm over every axis but the last, with its variables (params `scale`, `bias`; batch_stats `mean`,
  `var`), defaults and updates, so checkpoints move between the two. In training mode on one device it runs
  `batch_norm_train`; with `axis_name` (statistics over devices) it computes as nn.BatchNorm does."""
  use_running_average: bool = False
  momentum: float = 0.99
  epsilon: float = 1e-5
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), (c,))
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), (c,))
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    out_dtype = jnp.result_type(x, scale, bias)
    x2 = x.reshape(-1, c).astype(jnp.promote_types(x.dtype, jnp.float32))
    if not self.use_running_average and (self.axis_name is None or self.is_initializing()):
      y, mean, var = batch_norm_train(x2, scale, bias, self.epsilon)
    else:
      if self.use_running_average:
        mean, var = ra_mean.value, ra_var.value
      else:
        mean, mean2 = jax.lax.pmean(jnp.stack([jnp.mean(x2, 0), jnp.mean(x2 * x2, 0)]), self.axis_name)
        var = jnp.maximum(0.0, mean2 - mean * mean)
      y = (x2 - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    if not self.use_running_average and not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return y.reshape(x.shape).astype(out_dtype)


def max_pool_2x2(x_BxHxWxC):
  """2x2 max-pool with stride 2 as a reshape and a max: XLA:CPU's select-and-scatter gradient of nn.max_pool made
  the classifier's step 1.6x slower (638 vs 1013 images/s at batch 128)."""
  b, h, w, c = x_BxHxWxC.shape
  return x_BxHxWxC[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def depth_to_space(x_BxHxWx4C):
  """[B, H, W, 4C] -> [B, 2H, 2W, C]: channel group (i, j) becomes output pixel (2h + i, 2w + j)."""
  b, h, w, c4 = x_BxHxWx4C.shape
  c = c4 // 4
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


class Upsample2x(nn.Module):
  """Doubles H and W. `transpose`: a 4x4 stride-2 transposed conv (`ConvTranspose4x4`, nn.ConvTranspose's parameters).
  `subpixel`: a 3x3 conv to 4x the channels and depth-to-space, which covers every 4x4 stride-2 transposed conv at
  2.25x its parameters and FLOPs (from a 7x7 input: 9 taps per output pixel group against the transposed conv's 4).
  Before `conv_transpose_4x4_s2`, XLA:CPU ran the transposed conv's weight gradient so slowly that the sub-pixel
  layer was the fast one; now the transposed conv is (DCGAN step at batch 128: 1.38x the sub-pixel one's)."""
  features: int
  kind: str = "transpose"
  use_bias: bool = True  # False before BatchNorm, which cancels a bias

  @nn.compact
  def __call__(self, x):
    if self.kind == "transpose":
      # Named as nn.ConvTranspose is here: the same parameter tree and initialization.
      return ConvTranspose4x4(self.features, self.use_bias, name="ConvTranspose_0")(x)
    if self.kind == "subpixel":
      # nets.Conv has nn.Conv's parameters, so the tree (`Conv_0`) and its initialization are nn.Conv's.
      impl = "taps" if _taps_pays(4 * self.features, (1, 1)) else "lax"  # not `auto`: its `patches` is slower here
      return depth_to_space(Conv(4 * self.features, (3, 3), use_bias=self.use_bias, impl=impl)(x))
    raise ValueError(f"unknown upsample '{self.kind}'; expected one of {UPSAMPLE}")


class ConvEncoder(nn.Module):
  """Stride-2 4x4 convs with LeakyReLU, then a dense layer to `out_dim`; `dropout` acts on the flattened features
  that feed that layer, only when `train` is true (it has no parameters, so the parameter tree is the same)."""
  out_dim: int
  features: Sequence[int] = (32, 64)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x_BxHxWxC, train: bool = False):
    h = x_BxHxWxC
    for f in self.features:
      h = nn.leaky_relu(Conv(f, (4, 4), strides=(2, 2))(h), 0.2)
    h = nn.Dropout(self.dropout, deterministic=not train)(h.reshape(h.shape[0], -1))
    return Dense(self.out_dim, name="out")(h)


class ConvDecoder(nn.Module):
  """Dense to an [H/2^L, W/2^L] feature map, then L upsampling layers; returns logits [B, H, W, C]."""
  shape: tuple  # (H, W, C) of the output
  features: Sequence[int] = (64, 32)
  upsample: str = "transpose"

  @nn.compact
  def __call__(self, z_BxD):
    h_out, w_out, c = self.shape
    s = 2 ** len(self.features)
    h = Dense((h_out // s) * (w_out // s) * self.features[0], name="project")(z_BxD)
    h = nn.relu(h).reshape(z_BxD.shape[0], h_out // s, w_out // s, self.features[0])
    for f in self.features[1:]:
      h = nn.relu(Upsample2x(f, self.upsample)(h))
    return Upsample2x(c, self.upsample)(h)


def check_shape(shape, levels: int) -> None:
  """Conv nets here halve H and W `levels` times; the image must divide evenly."""
  s = 2 ** levels
  if shape[0] % s or shape[1] % s:
    raise ValueError(f"image size {shape[:2]} must be divisible by {s} for this architecture")


def mean_over_batch(metrics):
  return {k: jnp.mean(v) for k, v in metrics.items()}
