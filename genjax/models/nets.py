"""Linen building blocks shared by the model families: dense and conv layers, BatchNorm, pooling, 2x upsampling, the
conv encoder and decoder. Their CPU arithmetic is genjax.kernels' (on the CPU backend, `kernels.enabled()`), through
Flax's own hooks where it has them (nn.Dense's `dot_general`, nn.Conv's `conv_general_dilated`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import kernels

UPSAMPLE = ("transpose", "subpixel")

# nn.Dense (same parameters, names and float32 arithmetic) whose low-precision matmuls accumulate in float32.
Dense = functools.partial(nn.Dense, dot_general=kernels.dot_general)


def _promote_dtype(inputs, kernel, bias, dtype=None):
  """nn.Conv's `promote_dtype`, then a bias of [F] as [1, ..., 1, F] by broadcast_in_dim (nn.Conv reshapes the
  bias to that shape itself, a no-op once it has it), so that the bias add and its gradient lower to the ops of
  `y + bias`, as they did when nets.Conv was a module of its own, and programs compute bit for bit as then. With
  nn.Conv's reshape the values are the same in float32, but in bfloat16 programs XLA:CPU (free to keep bfloat16
  intermediates at higher precision) rounded the conv bias gradients of a scanned step differently, by a float32
  ulp."""
  inputs, kernel, bias = nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=dtype)
  if bias is not None and bias.ndim == 1:
    bias = jax.lax.expand_dims(bias, tuple(range(inputs.ndim - 1)))
  return inputs, kernel, bias


def Conv(features: int, kernel_size: tuple[int, int] = (3, 3), strides: tuple[int, int] = (1, 1),
         use_bias: bool = True, impl: str = "auto", **kwargs) -> nn.Conv:
  """nn.Conv(features, kernel_size, strides, padding="SAME", use_bias=use_bias, **kwargs) computing through
  `kernels.conv_general_dilated` with `impl`: nn.Conv's module, parameters (`kernel` [kh, kw, C, F], `bias` [F]) and
  initializers, so checkpoints move between the two. `auto` is XLA's conv off CPU and on CPU the form that computes
  it fastest there (`kernels.conv_general_dilated` lists the choice); `lax`, `patches`, `s2d` and `taps` ask for one
  form."""
  kwargs.setdefault("promote_dtype", _promote_dtype)
  return nn.Conv(features, kernel_size, strides, use_bias=use_bias, conv_general_dilated=kernels.conv_hook(impl),
                 **kwargs)


class ConvTranspose4x4(nn.Module):
  """nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME") with its parameters (`kernel` [4, 4, C, F],
  `bias` [F]) and initializers, so checkpoints move between the two, computing as `kernels.conv_transpose` (on CPU
  `kernels.conv_transpose_4x4_s2`). A module of its own because nn.ConvTranspose has no hook for its conv."""
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, x.shape[-1], self.features))
    y = kernels.conv_transpose(x, kernel, (2, 2), "SAME")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class BatchNorm(nn.Module):
  """nn.BatchNorm over every axis but the last, with its variables (params `scale`, `bias`; batch_stats `mean`,
  `var`), defaults and updates, so checkpoints move between the two. In training mode on one device it runs
  `kernels.batch_norm_train`; with `axis_name` (statistics over devices) it computes as nn.BatchNorm does. A module
  of its own because nn.BatchNorm has no hook for its arithmetic."""
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
      y, mean, var = kernels.batch_norm_train(x2, scale, bias, self.epsilon)
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
  """nn.max_pool(x, (2, 2), (2, 2)), exactly, as a reshape and a max, whose gradient is an elementwise select: the
  gradient of nn.max_pool is a select-and-scatter, which XLA:CPU runs slowly (docs/kernels.md)."""
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
  2.25x its parameters and FLOPs (9 taps per output pixel group against the transposed conv's 4). Its conv is
  `taps` where `kernels.taps_pays` for 4 * features, else `lax` (not `auto`, whose `patches` is the slower form
  here); docs/kernels.md compares the two kinds' speed on CPU."""
  features: int
  kind: str = "transpose"
  use_bias: bool = True  # False before BatchNorm, which cancels a bias

  @nn.compact
  def __call__(self, x):
    if self.kind == "transpose":
      # Named as nn.ConvTranspose is here: the same parameter tree and initialization.
      return ConvTranspose4x4(self.features, self.use_bias, name="ConvTranspose_0")(x)
    if self.kind == "subpixel":
      # nets.Conv is nn.Conv, so the tree (`Conv_0`) and its initialization are nn.Conv's.
      impl = "taps" if kernels.taps_pays(4 * self.features, (1, 1)) else "lax"
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
