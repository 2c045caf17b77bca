"""Convs in the forms XLA:CPU runs fast, each equal to lax.conv_general_dilated in value and both gradients, and
`conv_general_dilated`, lax's signature for nn.Conv's `conv_general_dilated` hook, which picks among them.

All take NHWC inputs and HWIO kernels (`DN`). Why each form pays, and by how much: docs/kernels.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from genjax.kernels.backend import enabled

DN = ("NHWC", "HWIO", "NHWC")
CONV_IMPLS = ("auto", "lax", "patches", "s2d", "taps")
# `auto` picks `conv_taps` for stride-1 convs to at most this many features (docs/kernels.md: where it was measured
# to pay).
TAPS_MAX_FEATURES = 4


def taps_pays(features: int, strides) -> bool:
  """Whether `conv_taps` is the form to pick for a conv to `features` with `strides`: kernels `enabled()`, stride 1
  and at most TAPS_MAX_FEATURES features."""
  return enabled() and tuple(strides) == (1, 1) and features <= TAPS_MAX_FEATURES


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """XLA's SAME padding of one spatial axis: (low, high)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def explicit_pads(x_size, kernel_size, strides, padding) -> tuple:
  """((top, bottom), (left, right)) for "SAME", "VALID" or explicit padding of an [H, W] = `x_size` input."""
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(x_size, kernel_size, strides, padding)
  return tuple(tuple(p) for p in padding)


def patches(x_BxHxWxC, kernel: tuple[int, int], strides: tuple[int, int], padding=None):
  """[B, H', W', kh*kw*C]: the receptive field of each output pixel, ordered (i, j, c) like a flattened [kh, kw, C, F]
  conv kernel, from kh*kw strided slices (whose gradient is a pad and an add). `padding`: ((top, bottom), (left,
  right)), or None for SAME. patches(x) @ kernel.reshape(kh*kw*C, F) is the conv, in value and both gradients."""
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
  """lax.conv_general_dilated(x, kernel, strides, pads) in NHWC / HWIO, equal to it in value and both gradients,
  whose gradients are NHWC / HWIO convs too. XLA:CPU runs a conv with Eigen only in that canonical form, and its
  ConvCanonicalization pass rewrites other forms (JAX's weight gradient, with batch and features swapped; its input
  gradient, with the kernel's I and O swapped) only in the entry computation: inside a while loop (`lax.scan`) they
  fall to a naive loop (jax-ml/jax#12868 shows the same for a channels-first forward conv). Here the gradients are
  written with explicit transposes, canonical wherever they run. `pads`: ((top, bottom), (left, right)).
  Chosen on CPU for every conv that no other form below computes (`conv_general_dilated`)."""
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


def xla_conv(x, kernel, strides, padding="SAME"):
  """XLA's NHWC / HWIO conv: `canonical_conv` where kernels are `enabled()` (the same values and gradients), lax's
  own elsewhere."""
  if not enabled():
    return _xla_conv(x, kernel, strides, padding)
  return canonical_conv(x, kernel, tuple(strides), explicit_pads(x.shape[1:3], kernel.shape[:2], strides, padding))


def _s2d_conv(x, kernel):
  """A SAME 4x4 stride-2 conv of an even-sized image, exactly, as a 2x2 stride-1 VALID conv over space_to_depth of
  the input padded by one pixel: kernel tap (2a + i, 2b + j) becomes tap (a, b) of channel group (i, j)."""
  c, f = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, f)
  return xla_conv(space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))), k, (1, 1), "VALID")


@jax.custom_vjp
def conv_4x4_stride2(x_BxHxWxC, kernel):
  """The SAME 4x4 stride-2 conv of an even-sized image, equal to XLA's in value and both gradients, each pass in the
  form XLA:CPU runs fastest: the forward pass over space_to_depth (`_s2d_conv`) for inputs of fewer than 8
  channels and as `xla_conv` otherwise, the input gradient always through space_to_depth, and the weight gradient
  as XLA's own strided conv's (in canonical form). Chosen on CPU for every such conv (`conv_general_dilated`)."""
  return _s2d_conv(x_BxHxWxC, kernel) if x_BxHxWxC.shape[-1] < 8 else xla_conv(x_BxHxWxC, kernel, (2, 2))


def _conv_4x4_stride2_fwd(x, kernel):
  return conv_4x4_stride2(x, kernel), (x, kernel)


def s2_weight_grad(x, dy):
  """The kernel gradient of the SAME 4x4 stride-2 conv of x whose output gradient is dy."""
  return _conv_weight_grad(x, dy, (4, 4), (2, 2), explicit_pads(x.shape[1:3], (4, 4), (2, 2), "SAME"))


def _conv_4x4_stride2_bwd(res, dy):
  x, kernel = res
  dx = jax.vjp(lambda v: _s2d_conv(v, kernel), x)[1](dy)[0]  # dropped by XLA where the input needs none (images)
  return dx, s2_weight_grad(x, dy)


conv_4x4_stride2.defvjp(_conv_4x4_stride2_fwd, _conv_4x4_stride2_bwd)


def _tap_matrix(kernel):
  """[kh, kw, C, F] -> [C, kh*kw*F], every tap's kernel side by side, ordered (i, j, f)."""
  kh, kw, c, f = kernel.shape
  return kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * f)


@jax.custom_vjp
def conv_taps(x_BxHxWxC, kernel):
  """The SAME stride-1 conv, equal to XLA's in value and both gradients, as one matmul and a sum: t = x @ [C,
  kh*kw*F] holds every tap's contribution at the pixel it reads, and output pixel (h, w) sums tap (i, j) of pixel
  (h + i - pad, w + j - pad). The backward pass is matmuls too, over the kh*kw shifts of the output gradient (F
  channels each): input gradient shifts(dy) @ W^T, weight gradient shifts(dy)^T @ x. Products accumulate in float32
  (bfloat16 operands too, like `dot_general`), and results are rounded to the operands' dtype once. Chosen on CPU
  for stride-1 convs to few features (`taps_pays`), where XLA:CPU's conv runs far below the matmul peak."""
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
  # anyway.
  dk = jax.lax.dot_general(shifts, x, (((0, 1, 2), (0, 1, 2)), ((), ())),
                           preferred_element_type=jnp.float32)  # [kh*kw*F, C]
  return dx.astype(x.dtype), dk.reshape(kh, kw, f, c).transpose(0, 1, 3, 2).astype(kernel.dtype)


conv_taps.defvjp(_conv_taps_fwd, _conv_taps_bwd)


def _plain(lhs, rhs, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
           precision, preferred_element_type) -> bool:
  """Whether the call is a 2-D NHWC / HWIO conv without dilations, groups, precision or result type: the convs the
  forms here compute."""
  if lhs.ndim != 4 or rhs.ndim != 4:
    return False
  dims = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  return (dims == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, DN)
          and all(tuple(d or (1, 1)) == (1, 1) for d in (lhs_dilation, rhs_dilation))
          and feature_group_count == 1 and batch_group_count == 1 and precision is None
          and preferred_element_type is None)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, *, impl: str = "auto"):
  """lax.conv_general_dilated, with its signature, for nn.Conv's `conv_general_dilated` hook: equal to it in value
  and both gradients, computed in the form `impl` names.

  `auto`: where kernels are `enabled()` (CPU), a 2-D NHWC / HWIO conv without dilations, groups, precision or
  result type (`_plain`) is `s2d` for a SAME 4x4 stride-2 conv of an even-sized image, `taps` for a SAME stride-1
  conv to at most TAPS_MAX_FEATURES features, `patches` for any other stride-1 conv and `lax` otherwise; any other
  conv, and every conv where kernels are not enabled, is lax's own.
  `lax`: XLA's conv, as `canonical_conv` where kernels are enabled (a conv that is not `_plain`: lax's own).
  `patches`: one matmul over `patches(x)`; `s2d`: `conv_4x4_stride2`; `taps`: `conv_taps`. These three are used on
  any backend when asked for, and raise ValueError for a conv they do not compute."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl '{impl}'; expected one of {CONV_IMPLS}")
  args = (lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count, batch_group_count, precision,
          preferred_element_type)
  plain = _plain(lhs, rhs, *args)
  if (impl == "auto" and not enabled()) or (impl in ("auto", "lax") and not plain):
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, *args)
  if not plain:
    raise ValueError(f"impl '{impl}' is a 2-D NHWC / HWIO conv without dilations, groups, precision or result type")
  strides, (kh, kw, c, f), size = tuple(window_strides), rhs.shape, lhs.shape[1:3]
  pads = explicit_pads(size, (kh, kw), strides, padding)
  same = pads == explicit_pads(size, (kh, kw), strides, "SAME")
  s2d = (kh, kw) == (4, 4) and strides == (2, 2) and size[0] % 2 == 0 and size[1] % 2 == 0 and same
  if impl == "auto":
    impl = ("s2d" if s2d else "taps" if same and taps_pays(f, strides) else "patches" if strides == (1, 1)
            else "lax")
  if impl == "patches":
    return patches(lhs, (kh, kw), strides, pads) @ rhs.reshape(kh * kw * c, f)
  if impl == "lax":
    return canonical_conv(lhs, rhs, strides, pads)
  if impl == "s2d":
    if not s2d:
      raise ValueError(f"impl 's2d' is a SAME 4x4 stride-2 conv of an even-sized image, got kernel {(kh, kw)}, "
                       f"strides {strides}, padding {pads}, input {tuple(size)}")
    return conv_4x4_stride2(lhs, rhs)
  if strides != (1, 1) or not same:
    raise ValueError(f"impl 'taps' is a SAME stride-1 conv, got strides {strides}, padding {pads}")
  return conv_taps(lhs, rhs)


@functools.cache
def conv_hook(impl: str = "auto"):
  """`conv_general_dilated` with `impl` fixed, for nn.Conv(conv_general_dilated=conv_hook(impl)); one function per
  impl, so modules built with the same impl compare equal."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl '{impl}'; expected one of {CONV_IMPLS}")
  return conv_general_dilated if impl == "auto" else functools.partial(conv_general_dilated, impl=impl)
