"""Makes the fixtures of tests/test_inception.py with PyTorch and pytorch-fid (not needed to run the tests).

    python -m venv /tmp/tv && /tmp/tv/bin/pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid==0.3.0 \
        numpy scipy jax ml_collections
    PYTHONPATH=. /tmp/tv/bin/python tests/data/make_inception_fixture.py

- inception_reference.npz: pool3 features from pytorch-fid's own `InceptionV3([3])` (torchvision's Inception3 with
  pytorch-fid's FID patches) loaded with `genjax.inception.random_state_dict(0)`, for a few grey and RGB images;
  and the input pytorch-fid feeds its network for the first grey image (every 7th row), to check the resize alone.
- torch_zip.pth, torch_legacy.pth, torch_expected.npz: one small state dict saved in each of torch.save's formats,
  with a transposed tensor, a view at an offset into a shared storage, a scalar and three dtypes.
"""

import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid import inception as pytorch_fid_inception

from genjax import inception

HERE = pathlib.Path(__file__).parent


def reference_model():
  weights = {k: torch.from_numpy(v) for k, v in inception.random_state_dict(0).items()}
  rng = np.random.default_rng(1)
  weights["fc.weight"] = torch.from_numpy(rng.normal(0, 0.01, (1008, 2048)).astype(np.float32))
  weights["fc.bias"] = torch.zeros(1008)
  # pytorch-fid fetches its weights with load_state_dict_from_url and loads them strictly: every name and shape of
  # genjax.inception.expected_shapes() must be exactly those of its model, or this fails.
  pytorch_fid_inception.load_state_dict_from_url = lambda *args, **kwargs: weights
  model = pytorch_fid_inception.InceptionV3([3], resize_input=True, normalize_input=True)
  return model.eval()


def big_image():
  """[1, 320, 320, 1] uint8, made again by the test from the same seed rather than stored."""
  return np.random.default_rng(2).integers(0, 256, (1, 320, 320, 1), dtype=np.uint8)


def main():
  torch.manual_seed(0)
  rng = np.random.default_rng(0)
  grey = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  grey[0] = 0
  grey[0, 6:22, 12:16] = 255  # a stroke, so the resize sees sharp edges
  rgb = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  big = big_image()  # larger than 299: the resize shrinks it, where antialiasing would differ from torch's
  model = reference_model()
  as_torch = lambda u8: torch.from_numpy(u8.astype(np.float32) / 255).permute(0, 3, 1, 2)  # noqa: E731
  with torch.no_grad():
    feats_grey = model(as_torch(grey).repeat(1, 3, 1, 1))[0][:, :, 0, 0].numpy()
    feats_rgb = model(as_torch(rgb))[0][:, :, 0, 0].numpy()
    feats_big = model(as_torch(big).repeat(1, 3, 1, 1))[0][:, :, 0, 0].numpy()
    fed = 2 * F.interpolate(as_torch(grey[:1]), size=(299, 299), mode="bilinear", align_corners=False) - 1
    fed_big = 2 * F.interpolate(as_torch(big), size=(299, 299), mode="bilinear", align_corners=False) - 1
  np.savez_compressed(HERE / "inception_reference.npz", grey=grey, feats_grey=feats_grey, rgb=rgb,
                      feats_rgb=feats_rgb, feats_big=feats_big, fed_rows=fed[0, 0, ::7].numpy(),
                      fed_big_rows=fed_big[0, 0, ::7].numpy(), torch_version=torch.__version__)

  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  shared = torch.arange(10, dtype=torch.float64)
  state = {"transposed": base.t(), "plain": base.clone(), "offset_view": shared[3:7], "whole": shared,
           "scalar": torch.tensor(7, dtype=torch.int64), "half": torch.linspace(-1, 1, 5).half()}
  torch.save(state, HERE / "torch_zip.pth")
  torch.save(state, HERE / "torch_legacy.pth", _use_new_zipfile_serialization=False)
  np.savez(HERE / "torch_expected.npz", **{k: v.numpy() for k, v in state.items()})
  print("max |feature| grey", np.abs(feats_grey).max(), "rgb", np.abs(feats_rgb).max())


if __name__ == "__main__":
  main()
