"""Linen building blocks shared by the model families: conv encoder, conv decoder, 2x upsampling."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

UPSAMPLE = ("transpose", "subpixel")


def depth_to_space(x_BxHxWx4C):
  """[B, H, W, 4C] -> [B, 2H, 2W, C]: channel group (i, j) becomes output pixel (2h + i, 2w + j)."""
  b, h, w, c4 = x_BxHxWx4C.shape
  c = c4 // 4
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


class Upsample2x(nn.Module):
  """Doubles H and W. `transpose`: a 4x4 stride-2 transposed conv. `subpixel`: a 3x3 conv to 4x the channels and
  depth-to-space, which covers every 4x4 stride-2 transposed conv and whose weight gradient is a plain conv
  (XLA:CPU runs transposed-conv weight gradients far slower)."""
  features: int
  kind: str = "transpose"
  use_bias: bool = True  # False before BatchNorm, which cancels a bias

  @nn.compact
  def __call__(self, x):
    if self.kind == "transpose":
      return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME", use_bias=self.use_bias)(x)
    if self.kind == "subpixel":
      return depth_to_space(nn.Conv(4 * self.features, (3, 3), padding="SAME", use_bias=self.use_bias)(x))
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
      h = nn.leaky_relu(nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(h), 0.2)
    h = nn.Dropout(self.dropout, deterministic=not train)(h.reshape(h.shape[0], -1))
    return nn.Dense(self.out_dim, name="out")(h)


class ConvDecoder(nn.Module):
  """Dense to an [H/2^L, W/2^L] feature map, then L upsampling layers; returns logits [B, H, W, C]."""
  shape: tuple  # (H, W, C) of the output
  features: Sequence[int] = (64, 32)
  upsample: str = "transpose"

  @nn.compact
  def __call__(self, z_BxD):
    h_out, w_out, c = self.shape
    s = 2 ** len(self.features)
    h = nn.Dense((h_out // s) * (w_out // s) * self.features[0], name="project")(z_BxD)
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
