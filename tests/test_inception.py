"""Inception FID: the weights reader, the architecture against pytorch-fid's own model, and bad weights files.

The fixtures come from tests/data/make_inception_fixture.py, which ran pytorch-fid 0.3.0 (torch 2.14.1,
torchvision 0.29.1) on `inception.random_state_dict(0)`; pytorch-fid loads weights strictly, so that run also
checked every name and shape of `inception.expected_shapes()`.
"""

import io
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

from genjax import inception
from genjax.errors import UserError

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def reference():
  with np.load(DATA / "inception_reference.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def params():
  return inception.fold(inception.random_state_dict(0))


@pytest.mark.parametrize("name", ["torch_zip.pth", "torch_legacy.pth"])
def test_reads_both_torch_save_formats_without_torch(name):
  got = inception.read_torch(DATA / name)
  with np.load(DATA / "torch_expected.npz") as expected:
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:  # a transposed view, an offset view of a shared storage, a scalar, 3 dtypes
      assert got[key].dtype == expected[key].dtype and got[key].shape == expected[key].shape, key
      np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def test_resize_and_scaling_match_pytorch_fid_exactly(reference):
  fed = np.asarray(inception.preprocess(reference["grey"][:1]))
  assert fed.shape == (1, 299, 299, 3)
  np.testing.assert_array_equal(fed[..., 0], fed[..., 2])  # grey repeated to RGB
  np.testing.assert_allclose(fed[0, ::7, :, 0], reference["fed_rows"], atol=1e-6)
  big = np.asarray(inception.preprocess(_big_image()))  # shrinking: torch's bilinear does not antialias
  np.testing.assert_allclose(big[0, ::7, :, 0], reference["fed_big_rows"], atol=1e-6)


def _big_image():
  return np.random.default_rng(2).integers(0, 256, (1, 320, 320, 1), dtype=np.uint8)  # as the fixture script made it


@pytest.mark.parametrize("kind", ["grey", "rgb", "big"])
def test_features_match_pytorch_fid_on_the_same_weights(reference, params, kind):
  images = _big_image() if kind == "big" else reference[kind]
  got = inception.features(params, images, batch=2)  # batch 2 of 3 images also checks the padded last batch
  want = reference[f"feats_{kind}"]
  assert got.shape == want.shape == (len(images), 2048)
  assert np.abs(want).max() > 1.0 and want.std() > 0.1  # the random weights carry signal through all 94 layers
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("name", ["Conv2d_1a_3x3", "Mixed_6b.branch7x7_2", "Mixed_7b.branch3x3_2b",
                                  "Mixed_5b.branch1x1"])
def test_both_conv_implementations_agree(params, name):
  """The features test runs the CPU one ('patches'); XLA's conv ('lax') is what GPUs run."""
  cin = inception.CONVS[name][0]
  x = np.random.default_rng(0).normal(size=(2, 11, 11, cin)).astype(np.float32)
  np.testing.assert_allclose(inception._basic_conv(params, name, x, impl="patches"),
                             inception._basic_conv(params, name, x, impl="lax"), rtol=1e-5, atol=1e-5)


def test_batchnorm_is_folded_exactly(params):
  """One BasicConv2d computed unfolded, as torch does (conv, then BN with running statistics, then ReLU)."""
  import jax
  sd = inception.random_state_dict(0)
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 3)).astype(np.float32)
  w = sd["Conv2d_1a_3x3.conv.weight"].transpose(2, 3, 1, 0)
  conv = np.asarray(jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                                 precision="highest"))
  bn = lambda p: sd[f"Conv2d_1a_3x3.bn.{p}"]  # noqa: E731
  want = np.maximum((conv - bn("running_mean")) / np.sqrt(bn("running_var") + 1e-3) * bn("weight") + bn("bias"), 0)
  got = np.asarray(inception._basic_conv(params, "Conv2d_1a_3x3", x, impl="lax"))
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_npz_weights_and_protocol_card(tmp_path, reference):
  path = tmp_path / "weights.npz"
  np.savez(path, **inception.random_state_dict(0))
  inception.load.cache_clear()
  params, card = inception.load(str(path))
  assert card["weights_sha256"] == inception.sha256(path) and not card["is_pytorch_fid_release"]
  assert "299" in card["network"] and "pool3" in card["network"]
  np.testing.assert_allclose(inception.features(params, reference["rgb"]), reference["feats_rgb"], rtol=0,
                             atol=2e-5 * np.abs(reference["feats_rgb"]).max())


def _one_line(excinfo):
  text = str(excinfo.value)
  assert "\n" not in text
  return text


def test_bad_weights_files_fail_with_one_line(tmp_path):
  inception.load.cache_clear()
  with pytest.raises(UserError) as e:
    inception.load(str(tmp_path / "missing.pth"))
  assert "not found" in _one_line(e)

  (tmp_path / "garbage.pth").write_bytes(os.urandom(256))
  with pytest.raises(UserError) as e:
    inception.load(str(tmp_path / "garbage.pth"))
  assert "cannot read" in _one_line(e)

  sd = inception.random_state_dict(0)
  del sd["Mixed_7c.branch_pool.conv.weight"]
  np.savez(tmp_path / "partial.npz", **sd)
  with pytest.raises(UserError) as e:
    inception.load(str(tmp_path / "partial.npz"))
  assert "lack 1 of the" in _one_line(e) and "Mixed_7c.branch_pool.conv.weight" in str(e.value)

  sd = inception.random_state_dict(0)
  sd["Conv2d_1a_3x3.conv.weight"] = sd["Conv2d_1a_3x3.conv.weight"][:, :1]  # a grey-input network
  np.savez(tmp_path / "shape.npz", **sd)
  with pytest.raises(UserError) as e:
    inception.load(str(tmp_path / "shape.npz"))
  assert "[32, 1, 3, 3], expected [32, 3, 3, 3]" in _one_line(e)


class _Code:
  def __reduce__(self):
    return (os.getcwd, ())


def test_a_pickle_that_calls_code_is_refused(tmp_path):
  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("evil/data.pkl", pickle.dumps({"w": _Code()}))
  with pytest.raises(UserError) as e:
    inception.read_torch(path)
  assert "refusing to load" in _one_line(e)
  legacy = io.BytesIO()
  for obj in (inception._LEGACY_MAGIC, 1001, {}):
    pickle.dump(obj, legacy)
  pickle.dump({"w": _Code()}, legacy)
  (tmp_path / "evil_legacy.pth").write_bytes(legacy.getvalue())
  with pytest.raises(UserError) as e:
    inception.read_torch(tmp_path / "evil_legacy.pth")
  assert "refusing to load" in _one_line(e)


def test_features_reject_wrong_images(params):
  with pytest.raises(UserError):
    inception.features(params, np.zeros((2, 28, 28, 2), np.uint8))
  with pytest.raises(UserError):
    inception.features(params, np.zeros((2, 28, 28, 1), np.float32))
