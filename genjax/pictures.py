"""PNG pictures: image grids, input-over-output reconstructions, samples beside their nearest training images and
loss curves."""

from __future__ import annotations

import math
import pathlib

import numpy as np
from PIL import Image


def grid(images, ncol: int | None = None, pad: int = 2) -> np.ndarray:
  """Tiles float images [N, H, W, C] in [0, 1] into one uint8 [rows*(H+pad)+pad, ..., C] array."""
  x = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = x.shape
  ncol = ncol or math.ceil(math.sqrt(n))
  nrow = math.ceil(n / ncol)
  out = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32) * 0.5
  for i in range(n):
    r, q = divmod(i, ncol)
    out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
  return np.round(out * 255).astype(np.uint8)


def save_png(path, array_HxWxC, scale: int = 2) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  a = array_HxWxC[..., 0] if array_HxWxC.shape[-1] == 1 else array_HxWxC
  img = Image.fromarray(a)
  img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def save_grid(path, images, ncol: int | None = None) -> None:
  save_png(path, grid(images, ncol))


def save_reconstructions(path, x, x_hat, ncol: int = 16) -> None:
  """Rows alternate: a row of inputs, then the row of their reconstructions."""
  x, x_hat = np.asarray(x), np.asarray(x_hat)
  rows = []
  for i in range(0, len(x), ncol):
    rows += [x[i:i + ncol], x_hat[i:i + ncol]]
  save_grid(path, np.concatenate(rows), ncol)


def save_curves(path, records: list[dict], keys: list[str]) -> None:
  """One panel per metric against step, from metrics.jsonl records."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  keys = [k for k in keys if any(k in r for r in records)]
  if not keys:
    return
  fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), squeeze=False)
  for ax, k in zip(axes[0], keys):
    pts = [(r["step"], r[k]) for r in records if k in r]
    ax.plot(*zip(*pts))
    ax.set_title(k)
    ax.set_xlabel("step")
  fig.tight_layout()
  pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_neighbours(path, samples_u8, train_u8, rows: int = 10, neighbours: int = 5) -> None:
  """Each row: a generated sample, then its `neighbours` nearest training images in pixel L2 (memorization shows as
  near-copies)."""
  fake = samples_u8[:rows].reshape(rows, -1).astype(np.float32)
  real = train_u8.reshape(len(train_u8), -1).astype(np.float32)
  nearest = []
  for f in fake:
    d = np.sum(real * real, axis=1) - 2.0 * real @ f
    nearest.append(np.argsort(d)[:neighbours])
  tiles = []
  for i in range(rows):
    tiles += [samples_u8[i]] + [train_u8[j] for j in nearest[i]]
  save_grid(path, np.stack(tiles).astype(np.float32) / 255.0, ncol=neighbours + 1)
