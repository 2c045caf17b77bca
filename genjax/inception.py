"""Inception FID, as an option: pytorch-fid's FID InceptionV3 in JAX, run on a weights file the user supplies.

The project's own FID is computed in the feature space of a small classifier trained here (`genjax.classifier`),
because ImageNet Inception is a poor fit for 28x28 grey digits and its weights cannot be downloaded on every machine.
For numbers comparable with papers, pass the weights of pytorch-fid's network (`pt_inception-2015-12-05-6726825d.pth`,
the TensorFlow FID graph ported to PyTorch) to `make eval ... INCEPTION=path`. This module:

- reads that file without PyTorch (`read_torch`: both of torch.save's formats, zip and legacy, through a pickle reader
  that only admits tensors and storages), or an `.npz` holding the same names;
- checks every parameter's name and shape against the architecture and folds each BatchNorm into its convolution;
- computes the 2048-d pool3 features exactly the way pytorch-fid does: bilinear resize to 299x299 (align_corners=False,
  no antialiasing), inputs scaled from [0, 1] to [-1, 1], grey images repeated to 3 channels, torchvision's Inception3
  with pytorch-fid's FID patches (average pools that leave padding out of the count, a max pool in the last block).

`tests/test_inception.py` checks the features against pytorch-fid's own model on the same (random) weights, from a
fixture made by `tests/data/make_inception_fixture.py`.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import pathlib
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data, kernels
from genjax.errors import UserError

SIZE = 299
FEATURES = 2048
BN_EPS = 1e-3  # torchvision's BasicConv2d
PYTORCH_FID_SHA256_PREFIX = "6726825d"  # pt_inception-2015-12-05-6726825d.pth, named by torch hub's convention
PROTOCOL = ("pytorch-fid's FID InceptionV3 architecture, pool3 2048-d features; uint8/255, "
            "grey repeated to RGB, bilinear resize to 299x299 (align_corners=False, no antialiasing), "
            "scaled to [-1, 1]")


# ------------------------------------------------------------------------------------------------- the architecture


def _conv(name, cin, cout, kernel, stride=1, padding=0):
  kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
  ph, pw = (padding, padding) if isinstance(padding, int) else padding
  return name, (cin, cout, kh, kw, stride, ph, pw)


def _block_a(name, cin, pool_features):
  return [_conv(f"{name}.branch1x1", cin, 64, 1),
          _conv(f"{name}.branch5x5_1", cin, 48, 1), _conv(f"{name}.branch5x5_2", 48, 64, 5, padding=2),
          _conv(f"{name}.branch3x3dbl_1", cin, 64, 1), _conv(f"{name}.branch3x3dbl_2", 64, 96, 3, padding=1),
          _conv(f"{name}.branch3x3dbl_3", 96, 96, 3, padding=1),
          _conv(f"{name}.branch_pool", cin, pool_features, 1)]


def _block_b(name, cin):
  return [_conv(f"{name}.branch3x3", cin, 384, 3, stride=2),
          _conv(f"{name}.branch3x3dbl_1", cin, 64, 1), _conv(f"{name}.branch3x3dbl_2", 64, 96, 3, padding=1),
          _conv(f"{name}.branch3x3dbl_3", 96, 96, 3, stride=2)]


def _block_c(name, cin, c7):
  row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
  return [_conv(f"{name}.branch1x1", cin, 192, 1),
          _conv(f"{name}.branch7x7_1", cin, c7, 1), _conv(f"{name}.branch7x7_2", c7, c7, row[0], padding=row[1]),
          _conv(f"{name}.branch7x7_3", c7, 192, col[0], padding=col[1]),
          _conv(f"{name}.branch7x7dbl_1", cin, c7, 1),
          _conv(f"{name}.branch7x7dbl_2", c7, c7, col[0], padding=col[1]),
          _conv(f"{name}.branch7x7dbl_3", c7, c7, row[0], padding=row[1]),
          _conv(f"{name}.branch7x7dbl_4", c7, c7, col[0], padding=col[1]),
          _conv(f"{name}.branch7x7dbl_5", c7, 192, row[0], padding=row[1]),
          _conv(f"{name}.branch_pool", cin, 192, 1)]


def _block_d(name, cin):
  return [_conv(f"{name}.branch3x3_1", cin, 192, 1), _conv(f"{name}.branch3x3_2", 192, 320, 3, stride=2),
          _conv(f"{name}.branch7x7x3_1", cin, 192, 1),
          _conv(f"{name}.branch7x7x3_2", 192, 192, (1, 7), padding=(0, 3)),
          _conv(f"{name}.branch7x7x3_3", 192, 192, (7, 1), padding=(3, 0)),
          _conv(f"{name}.branch7x7x3_4", 192, 192, 3, stride=2)]


def _block_e(name, cin):
  return [_conv(f"{name}.branch1x1", cin, 320, 1),
          _conv(f"{name}.branch3x3_1", cin, 384, 1),
          _conv(f"{name}.branch3x3_2a", 384, 384, (1, 3), padding=(0, 1)),
          _conv(f"{name}.branch3x3_2b", 384, 384, (3, 1), padding=(1, 0)),
          _conv(f"{name}.branch3x3dbl_1", cin, 448, 1), _conv(f"{name}.branch3x3dbl_2", 448, 384, 3, padding=1),
          _conv(f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), padding=(0, 1)),
          _conv(f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), padding=(1, 0)),
          _conv(f"{name}.branch_pool", cin, 192, 1)]


# Every BasicConv2d (conv without bias, BatchNorm eps=1e-3, ReLU) by its torchvision module name, with
# (in, out, kh, kw, stride, pad_h, pad_w).
CONVS = dict([
    _conv("Conv2d_1a_3x3", 3, 32, 3, stride=2), _conv("Conv2d_2a_3x3", 32, 32, 3),
    _conv("Conv2d_2b_3x3", 32, 64, 3, padding=1), _conv("Conv2d_3b_1x1", 64, 80, 1),
    _conv("Conv2d_4a_3x3", 80, 192, 3),
    *_block_a("Mixed_5b", 192, 32), *_block_a("Mixed_5c", 256, 64), *_block_a("Mixed_5d", 288, 64),
    *_block_b("Mixed_6a", 288),
    *_block_c("Mixed_6b", 768, 128), *_block_c("Mixed_6c", 768, 160), *_block_c("Mixed_6d", 768, 160),
    *_block_c("Mixed_6e", 768, 192),
    *_block_d("Mixed_7a", 768), *_block_e("Mixed_7b", 1280), *_block_e("Mixed_7c", 2048)])


def expected_shapes() -> dict[str, tuple]:
  """Every tensor the features need, by its name in pytorch-fid's state dict, with its shape."""
  shapes = {}
  for name, (cin, cout, kh, kw, *_) in CONVS.items():
    shapes[f"{name}.conv.weight"] = (cout, cin, kh, kw)
    for part in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{name}.bn.{part}"] = (cout,)
  return shapes


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights with every name and shape of the real file, for tests: He-scaled convolutions and BatchNorm
  statistics near 1, so activations neither vanish nor explode through the 94 layers."""
  out = {}
  for i, (key, shape) in enumerate(expected_shapes().items()):
    rng = np.random.default_rng([seed, i])
    if key.endswith("conv.weight"):
      value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    elif key.endswith(("bn.weight", "bn.running_var")):
      value = rng.uniform(0.7, 1.3, shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    out[key] = value.astype(np.float32)
  return out


# ----------------------------------------------------------------------------------------------- the forward pass


def conv_impl() -> str:
  """'patches' where genjax's CPU kernels are enabled (`kernels.enabled()`: a conv as one matmul over its receptive
  fields, `kernels.patches`; docs/kernels.md has its gain here), 'lax' (XLA's conv, cuDNN) elsewhere."""
  return "patches" if kernels.enabled() else "lax"


def _basic_conv(params, name, x, impl: str | None = None):
  """conv + folded BatchNorm + ReLU, NHWC. HIGHEST precision: no TF32 on GPUs, so features match across devices."""
  cin, cout, kh, kw, stride, ph, pw = CONVS[name]
  w, b = params[name]
  if (impl or conv_impl()) == "lax":
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), ((ph, ph), (pw, pw)),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
  else:
    cols = kernels.patches(x, (kh, kw), (stride, stride), ((ph, ph), (pw, pw)))
    y = jnp.matmul(cols, w.reshape(kh * kw * cin, cout), precision=jax.lax.Precision.HIGHEST)
  return jax.nn.relu(y + b)


def _max_pool(x, stride, pad):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                               ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_exclude_pad(x):
  """3x3, stride 1, padding 1, dividing by the number of real (unpadded) inputs: TensorFlow's and pytorch-fid's."""
  window, pads = (1, 3, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, (1, 1, 1, 1), pads)
  count = jax.lax.reduce_window(jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype), 0.0, jax.lax.add, window,
                                (1, 1, 1, 1), pads)
  return total / count


def _mixed_a(p, n, x):
  c = functools.partial(_basic_conv, p)
  return jnp.concatenate([
      c(f"{n}.branch1x1", x),
      c(f"{n}.branch5x5_2", c(f"{n}.branch5x5_1", x)),
      c(f"{n}.branch3x3dbl_3", c(f"{n}.branch3x3dbl_2", c(f"{n}.branch3x3dbl_1", x))),
      c(f"{n}.branch_pool", _avg_pool_exclude_pad(x))], axis=-1)


def _mixed_b(p, n, x):
  c = functools.partial(_basic_conv, p)
  return jnp.concatenate([
      c(f"{n}.branch3x3", x),
      c(f"{n}.branch3x3dbl_3", c(f"{n}.branch3x3dbl_2", c(f"{n}.branch3x3dbl_1", x))),
      _max_pool(x, 2, 0)], axis=-1)


def _mixed_c(p, n, x):
  c = functools.partial(_basic_conv, p)
  b7 = x
  for i in (1, 2, 3):
    b7 = c(f"{n}.branch7x7_{i}", b7)
  d7 = x
  for i in (1, 2, 3, 4, 5):
    d7 = c(f"{n}.branch7x7dbl_{i}", d7)
  return jnp.concatenate([c(f"{n}.branch1x1", x), b7, d7, c(f"{n}.branch_pool", _avg_pool_exclude_pad(x))], axis=-1)


def _mixed_d(p, n, x):
  c = functools.partial(_basic_conv, p)
  b7 = x
  for i in (1, 2, 3, 4):
    b7 = c(f"{n}.branch7x7x3_{i}", b7)
  return jnp.concatenate([c(f"{n}.branch3x3_2", c(f"{n}.branch3x3_1", x)), b7, _max_pool(x, 2, 0)], axis=-1)


def _mixed_e(p, n, x, pool):
  c = functools.partial(_basic_conv, p)
  b3 = c(f"{n}.branch3x3_1", x)
  d3 = c(f"{n}.branch3x3dbl_2", c(f"{n}.branch3x3dbl_1", x))
  return jnp.concatenate([
      c(f"{n}.branch1x1", x),
      c(f"{n}.branch3x3_2a", b3), c(f"{n}.branch3x3_2b", b3),
      c(f"{n}.branch3x3dbl_3a", d3), c(f"{n}.branch3x3dbl_3b", d3),
      c(f"{n}.branch_pool", pool(x))], axis=-1)


def preprocess(images_u8):
  """uint8 [N, H, W, 1 or 3] -> float32 [N, 299, 299, 3] in [-1, 1], as pytorch-fid feeds its network."""
  x = images_u8.astype(jnp.float32) / 255.0
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  # Half-pixel centres and a triangle kernel without antialiasing: torch's bilinear with align_corners=False.
  x = jax.image.resize(x, (x.shape[0], SIZE, SIZE, 3), "bilinear", antialias=False)
  return 2.0 * x - 1.0


def apply(params, images_u8):
  """pool3 features [N, 2048] of uint8 images [N, H, W, C]: pytorch-fid's `InceptionV3([3])` forward."""
  c = functools.partial(_basic_conv, params)
  x = preprocess(images_u8)
  x = c("Conv2d_2b_3x3", c("Conv2d_2a_3x3", c("Conv2d_1a_3x3", x)))
  x = _max_pool(x, 2, 0)
  x = _max_pool(c("Conv2d_4a_3x3", c("Conv2d_3b_1x1", x)), 2, 0)
  for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
    x = _mixed_a(params, name, x)
  x = _mixed_b(params, "Mixed_6a", x)
  for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
    x = _mixed_c(params, name, x)
  x = _mixed_d(params, "Mixed_7a", x)
  x = _mixed_e(params, "Mixed_7b", x, _avg_pool_exclude_pad)
  x = _mixed_e(params, "Mixed_7c", x, lambda v: _max_pool(v, 1, 1))  # pytorch-fid's patch: max, not average
  return x.mean(axis=(1, 2))


_apply = jax.jit(apply)


def features(params, images_u8: np.ndarray, batch: int = 50) -> np.ndarray:
  """apply() over batches of at most `batch` images (the last one padded, so there is one compiled shape)."""
  images_u8 = np.asarray(images_u8)
  if images_u8.ndim != 4 or images_u8.shape[-1] not in (1, 3) or images_u8.dtype != np.uint8:
    raise UserError(f"Inception features need uint8 [N, H, W, 1 or 3] images, got {images_u8.dtype} "
                    f"{list(images_u8.shape)}")
  return data.batched(lambda x: _apply(params, x), images_u8, batch_size=min(batch, len(images_u8)), pad=True)


# ------------------------------------------------------------------------------------------------- the weights file


def fold(state_dict: dict[str, np.ndarray]) -> dict:
  """{name: (HWIO weight, bias)} with each BatchNorm folded into its convolution, after checking names and shapes."""
  shapes = expected_shapes()
  missing = [k for k in shapes if k not in state_dict]
  if missing:
    raise UserError(f"the Inception weights lack {len(missing)} of the {len(shapes)} tensors pytorch-fid's FID "
                    f"InceptionV3 needs, e.g. {missing[0]!r}")
  for key, shape in shapes.items():
    if tuple(state_dict[key].shape) != shape:
      raise UserError(f"the Inception weights' {key} is {list(state_dict[key].shape)}, expected {list(shape)}")
  params = {}
  for name in CONVS:
    get = lambda part, name=name: np.asarray(state_dict[f"{name}.{part}"], np.float64)  # noqa: E731
    scale = get("bn.weight") / np.sqrt(get("bn.running_var") + BN_EPS)
    weight = get("conv.weight") * scale[:, None, None, None]
    bias = get("bn.bias") - get("bn.running_mean") * scale
    params[name] = (jnp.asarray(weight.transpose(2, 3, 1, 0), jnp.float32), jnp.asarray(bias, jnp.float32))
  return params


def sha256(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


@functools.cache
def load(path: str) -> tuple[dict, dict]:
  """(folded params, protocol card) from a pytorch-fid .pth or an .npz of the same names."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise UserError(f"Inception weights file {file} not found; pass pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
  if file.suffix == ".npz":
    try:
      with np.load(file, allow_pickle=False) as f:
        state_dict = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
      raise UserError(f"cannot read {file} as .npz: {str(e).splitlines()[0][:200]}") from e
  else:
    state_dict = read_torch(file)
  digest = sha256(file)
  card = {"network": PROTOCOL, "weights": str(file), "weights_sha256": digest,
          "is_pytorch_fid_release": digest.startswith(PYTORCH_FID_SHA256_PREFIX)}
  return fold(state_dict), card


# --------------------------------------------------------------------- torch.save files, read without PyTorch

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


class _StorageType:
  def __init__(self, name):
    if name not in _DTYPES:
      raise pickle.UnpicklingError(f"unsupported tensor storage torch.{name}")
    self.dtype = np.dtype(_DTYPES[name])


class _Tensor:
  """A tensor to be built once its storage can be read (in the legacy format the storages follow the pickle)."""

  def __init__(self, storage, offset, size, stride, *_):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def build(self) -> np.ndarray:
    flat = self.storage()
    if not self.size:
      return flat[self.offset].copy()
    item = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(flat[self.offset:], self.size, tuple(s * item for s in self.stride)).copy()


def _rebuild_parameter(data, *_):
  return data


class _Storage:
  def __init__(self, read, key, dtype, numel):
    self.read, self.key, self.dtype, self.numel = read, key, dtype, numel

  def __call__(self) -> np.ndarray:
    return self.read(self.key, self.dtype, self.numel)


class _Unpickler(pickle.Unpickler):
  """Admits only what a state dict holds: OrderedDicts, tensors and their storages (like torch's weights_only)."""

  def __init__(self, file, read_storage):
    super().__init__(file)
    self._read_storage = read_storage
    self.storages: dict[str, _Storage] = {}  # by key, as the pickle names them

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _Tensor
    if (module, name) == ("torch._utils", "_rebuild_parameter"):
      return _rebuild_parameter
    if module == "torch" and name.endswith("Storage"):
      return _StorageType(name)
    raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

  def persistent_load(self, pid):
    kind, storage_type, key, _location, numel = pid[:5]
    if kind != "storage":
      raise pickle.UnpicklingError(f"unknown persistent object {kind!r}")
    storage = self.storages[str(key)] = _Storage(self._read_storage, str(key), storage_type.dtype, int(numel))
    return storage


def _state_dict(obj, file) -> dict[str, np.ndarray]:
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise UserError(f"{file} holds a {type(obj).__name__}, not a state dict")
  return {k: v.build() for k, v in obj.items() if isinstance(v, _Tensor)}


def read_torch(file) -> dict[str, np.ndarray]:
  """The state dict in a torch.save file, as numpy arrays, for either of torch's formats."""
  file = pathlib.Path(file)
  try:
    if zipfile.is_zipfile(file):
      return _read_zip(file)
    return _read_legacy(file)
  except (pickle.UnpicklingError, EOFError, ValueError, KeyError, zipfile.BadZipFile, AttributeError,
          IndexError, TypeError) as e:
    raise UserError(f"cannot read {file} as a torch.save state dict: {str(e).splitlines()[0][:200]}") from e


def _read_zip(file) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(file) as z:
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
      raise zipfile.BadZipFile("no data.pkl in the archive")
    prefix = pkl[0][:-len("data.pkl")]
    cache: dict = {}

    def read_storage(key, dtype, numel):
      if key not in cache:
        cache[key] = np.frombuffer(z.read(f"{prefix}data/{key}"), dtype, count=numel)
      return cache[key]

    return _state_dict(_Unpickler(io.BytesIO(z.read(pkl[0])), read_storage).load(), file)


def _read_legacy(file) -> dict[str, np.ndarray]:
  """torch's format before 1.6: magic number, protocol, sys info, the pickle, its storage keys, then each storage
  as an int64 element count followed by its bytes, in the order of the keys."""
  with open(file, "rb") as f:
    plain = lambda: _Unpickler(f, None).load()  # noqa: E731 -- admits no classes beyond the allowed ones
    if plain() != _LEGACY_MAGIC:
      raise pickle.UnpicklingError("not a torch.save file (bad magic number)")
    plain()  # protocol version
    plain()  # sys info: a dict of ints and bools
    raw: dict = {}
    unpickler = _Unpickler(f, lambda key, dtype, numel: np.frombuffer(raw[key], dtype, count=numel))
    obj = unpickler.load()
    keys = plain()  # the storage keys, in the order their bytes follow
    for key in map(str, keys):
      numel = int(np.frombuffer(f.read(8), "<i8")[0])
      raw[key] = f.read(numel * unpickler.storages[key].dtype.itemsize)
    return _state_dict(obj, file)
