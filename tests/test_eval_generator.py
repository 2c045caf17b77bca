"""genjax.eval.generator: the classifier's feature space separates datasets, and Inception FID with given weights."""

import json

import numpy as np
import pytest
from test_eval_run import feature_net  # noqa: F401 -- a fixture

from genjax import classifier, data, main, metrics
from genjax.eval import generator


def test_mnist_halves_are_far_closer_than_fashion_to_mnist(feature_net):  # noqa: F811
  state, _ = generator.feature_network("mnist")
  mnist = data.load("mnist", "test").images
  order = np.random.default_rng(0).permutation(len(mnist))
  a = classifier.features(state, mnist[order[:2000]])
  b = classifier.features(state, mnist[order[5000:7000]])
  fashion = classifier.features(state, data.load("fashion_mnist", "test").images[:2000])
  same, other = metrics.fid(a, b), metrics.fid(fashion, b)
  assert same < other / 20, (same, other)
  kid_same = metrics.kid(a, b, num_subsets=20)["kid"]
  kid_other = metrics.kid(fashion, b, num_subsets=20)["kid"]
  assert kid_same < kid_other / 20, (kid_same, kid_other)


@pytest.mark.slow  # about 30 s on 2 cores: an Inception network on CPU
def test_inception_fid_with_supplied_weights(feature_net, tmp_path, monkeypatch, capsys):  # noqa: F811
  """The option end to end, on random weights with the real file's names and shapes (the architecture itself is
  checked against pytorch-fid in test_inception.py)."""
  from genjax import inception
  weights = tmp_path / "pt_inception.npz"
  np.savez(weights, **inception.random_state_dict(0))
  monkeypatch.setattr(generator, "inception_cache", lambda: tmp_path / "cache")
  generator.clear_caches()
  test = data.load("mnist", "test")
  np.savez(tmp_path / "same.npz", images=test.images[:12])
  np.savez(tmp_path / "ones.npz", images=test.images[test.labels == 1][:12])
  args = ["eval", "--dataset", "mnist", "--num_reference", "12", "--inception", str(weights), "--samples"]
  assert main.main(args + [str(tmp_path / "same.npz")]) == 0
  assert "Inception FID" in capsys.readouterr().out
  same = json.loads((tmp_path / "same.eval.json").read_text())
  assert len(list((tmp_path / "cache").glob("mnist-test-12-*.npy"))) == 1  # the reference features, cached
  card = same["protocol"]["inception"]
  assert card["weights_sha256"] == inception.sha256(weights) and card["reference"] == "mnist test split, 12 images"
  generator.clear_caches()
  monkeypatch.setattr(inception, "features", _counting(inception.features))
  assert main.main(args + [str(tmp_path / "ones.npz")]) == 0
  assert inception.features.calls == 1  # the samples only: the reference came from the cache
  ones = json.loads((tmp_path / "ones.eval.json").read_text())
  assert abs(same["inception_fid"]) < 1e-3 * ones["inception_fid"] and ones["inception_fid"] > 0
  assert same["inception_kid"] < ones["inception_kid"]
  assert main.main(args + [str(tmp_path / "same.npz"), "--inception", str(tmp_path / "none.pth")]) == 2
  assert "Inception weights file" in capsys.readouterr().err


def _counting(fn):
  def counted(*args, **kwargs):
    counted.calls += 1
    return fn(*args, **kwargs)
  counted.calls = 0
  return counted
