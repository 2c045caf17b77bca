"""Evaluation from checkpoints and sample files, with a small classifier trained here as the feature network."""

import json

import jax
import numpy as np
import pytest

from genjax import classifier, data, evaluate, main, metrics, train
from genjax.errors import UserError
from genjax.models import MODELS

from conftest import small_config


@pytest.fixture(scope="module")
def feature_net(tmp_path_factory):
  """A 150-step classifier in a temporary ROOT, standing in for runs/classifier (which takes minutes)."""
  root = tmp_path_factory.mktemp("classifier")
  small = classifier.get_config("mnist")
  small.data.train_limit = 4096
  small.train.batch_size = 64
  small.train.steps = small.optim.decay_steps = 150
  small.train.log_every, small.train.sample_every, small.train.checkpoint_every = 50, 150, 150
  small.optim.warmup_steps = 10
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(classifier, "ROOT", root)
    mp.setattr(classifier, "get_config", lambda dataset="mnist": small)
    classifier.load.cache_clear()
    evaluate.feature_network.cache_clear()
    evaluate._real_features.cache_clear()
    yield root
    classifier.load.cache_clear()
    evaluate.feature_network.cache_clear()
    evaluate._real_features.cache_clear()


def _trained(tmp_path, model, steps=4, **train_overrides):
  c = small_config(model, steps=steps, sample_every=steps, checkpoint_every=steps, log_every=steps,
                   **train_overrides)
  train.train(c, tmp_path / model, quiet=True)
  return tmp_path / model


FAST = dict(num_samples=300, nll_k=20, nll_examples=40, num_reference=500)


# One of each kind of metric block, with the variants that need their own code path (a VAE conditioned on labels, a
# DAE's denoising); the other models run with `make test-slow`.
QUICK_MODELS = ("gan", "vae_dense", "cvae", "dae")


@pytest.mark.parametrize("model", [m if m in QUICK_MODELS else pytest.param(m, marks=pytest.mark.slow)
                                   for m in sorted(MODELS)])
def test_every_model_restores_and_gets_its_metrics(feature_net, tmp_path, model):
  workdir = _trained(tmp_path, model)
  result = evaluate.evaluate_run(workdir, **FAST)
  assert result["model"] == model and result["step"] == 4
  assert ("label_accuracy" in result) == (model in ("cvae", "cgan"))  # the conditional generators
  saved = json.loads((workdir / "eval.json").read_text())
  assert saved["fid" if "fid" in result else "step"] == result["fid" if "fid" in result else "step"]
  p = result["protocol"]
  assert p["dataset"] == "mnist" and p["seed"] == 0 and "device" in p and "jax" in p["versions"]
  kind = evaluate.kind(model)
  if kind in ("generator", "vae"):
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "classifier_score", "classes_covered",
                "class_kl"):
      assert np.isfinite(result[key]), key
    assert p["num_samples"] == 300 and len(p["feature_network"]["sha256"]) == 16
    assert (workdir / "eval" / "samples.png").exists() and (workdir / "eval" / "nearest_training.png").exists()
    with np.load(workdir / "eval" / "samples.npz") as f:
      assert f["images"].dtype == np.uint8 and f["images"].shape == (300, 28, 28, 1)
  if kind == "vae":
    assert np.isfinite(result["nll"]) and result["nll"] <= result["neg_elbo"]
    assert "binarization" in p and p["likelihood_examples"] == 40
  if kind == "autoencoder":
    assert 0 < result["mse"] < 784 and result["psnr"] > 0 and "fid" not in result
    assert (workdir / "eval" / "reconstructions.png").exists()
    if model == "dae":
      assert np.isfinite(result["denoise_psnr"])
  assert result["training"]["steps"] == 4 and result["training"]["train_s"] > 0


def test_same_checkpoint_and_seed_give_the_same_numbers(feature_net, tmp_path):
  workdir = _trained(tmp_path, "vae_dense")
  a = evaluate.evaluate_run(workdir, **FAST, write=False)
  b = evaluate.evaluate_run(workdir, **FAST, write=False)
  c = evaluate.evaluate_run(workdir, **FAST, seed=1, write=False)
  for key in ("fid", "kid", "precision", "recall", "neg_elbo", "nll"):
    assert a[key] == b[key], key
  assert a["fid"] != c["fid"] and a["nll"] != c["nll"]


def test_likelihood_bound_tightens_with_k_and_stays_below_the_elbo(feature_net, tmp_path):
  run = evaluate.load_run(_trained(tmp_path, "vae_dense", steps=20))
  small = evaluate.likelihood_metrics(run, 0, k=1, examples=100)
  large = evaluate.likelihood_metrics(run, 0, k=200, examples=100)
  assert small["nll"] == pytest.approx(small["neg_elbo"], abs=1e-3)  # k = 1: the bound is the ELBO
  assert large["nll"] < large["neg_elbo"] - 0.5  # the importance-weighted bound is tighter
  assert large["neg_elbo"] == pytest.approx(small["neg_elbo"], abs=4 * small["neg_elbo_se"])


def test_label_accuracy_counts_the_samples_classified_as_their_label(feature_net, tmp_path, monkeypatch):
  run = evaluate.load_run(_trained(tmp_path, "cvae"))
  test = data.load("mnist", "test")
  bank = jax.numpy.asarray(np.stack([test.images[test.labels == k][:5] for k in range(10)]) / 255.0)  # [10, 5, ...]

  def real_digits(shift):  # "samples" that are test digits of class label + shift
    return lambda state, rng, labels: bank[(labels + shift) % 10, jax.numpy.arange(labels.shape[0]) % 5]

  monkeypatch.setattr(run.family, "sample_class", real_digits(0))
  right = evaluate.label_accuracy(run, "mnist", 250, seed=0, batch=100)
  monkeypatch.setattr(run.family, "sample_class", real_digits(1))
  wrong = evaluate.label_accuracy(run, "mnist", 250, seed=0, batch=100)
  assert right > 0.8 and wrong < 0.2, (right, wrong)


def test_binarization_is_fixed_and_follows_the_grey_levels():
  x = np.full((4, 200, 200, 1), 64, np.uint8)
  b = evaluate.binarize(x, 0)
  assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.25) < 0.01
  np.testing.assert_array_equal(b, evaluate.binarize(x, 0))
  assert not np.array_equal(b, evaluate.binarize(x, 1))


def test_mnist_halves_are_far_closer_than_fashion_to_mnist(feature_net):
  state, _ = evaluate.feature_network("mnist")
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


def test_a_samples_file_is_scored_like_a_model(feature_net, tmp_path):
  images = data.load("mnist", "test").images
  path = tmp_path / "real.npz"
  np.savez(path, images=images[:500])
  result = evaluate.evaluate_samples(path, "mnist", num_reference=1000)
  assert json.loads((tmp_path / "real.eval.json").read_text())["fid"] == result["fid"]
  assert result["classes_covered"] == 10 and result["precision"] > 0.8 and result["recall"] > 0.8
  ones = images[data.load("mnist", "test").labels == 1][:300]
  np.savez(tmp_path / "ones.npz", images=ones)
  collapsed = evaluate.evaluate_samples(tmp_path / "ones.npz", "mnist", tmp_path / "out.json", num_reference=1000)
  assert collapsed["classes_covered"] == 1 and collapsed["class_kl"] > 1.5
  assert collapsed["fid"] > 5 * result["fid"]
  assert (tmp_path / "out.json").exists()


def test_inception_fid_with_supplied_weights(feature_net, tmp_path, monkeypatch, capsys):
  """The option end to end, on random weights with the real file's names and shapes (the architecture itself is
  checked against pytorch-fid in test_inception.py)."""
  from genjax import inception
  weights = tmp_path / "pt_inception.npz"
  np.savez(weights, **inception.random_state_dict(0))
  monkeypatch.setattr(evaluate, "inception_cache", lambda: tmp_path / "cache")
  evaluate._inception_reference.cache_clear()
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
  evaluate._inception_reference.cache_clear()
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


@pytest.mark.parametrize("content,message", [
    ({"pictures": np.zeros((3, 28, 28, 1), np.uint8)}, "has no array 'images'"),
    ({"images": np.zeros((3, 28, 28, 1), np.float32)}, "must be uint8 [N, H, W, C]"),
    ({"images": np.zeros((3, 28, 28), np.uint8)}, "must be uint8 [N, H, W, C]"),
    ({"images": np.zeros((3, 32, 32, 1), np.uint8)}, "images are [32, 32, 1] but mnist images are [28, 28, 1]"),
])
def test_bad_samples_files_get_one_line(tmp_path, capsys, content, message):
  path = tmp_path / "s.npz"
  np.savez(path, **content)
  assert main.main(["eval", "--samples", str(path), "--dataset", "mnist"]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("genjax: error: ") and message in err and "\n" not in err


def test_not_an_npz_file(tmp_path):
  path = tmp_path / "s.npz"
  path.write_bytes(b"garbage")
  with pytest.raises(UserError, match="cannot read"):
    evaluate.load_samples(path)


def test_bad_runs_get_one_line_and_nothing_is_lost(tmp_path, capsys):
  assert main.main(["eval", "--workdir", str(tmp_path / "missing")]) == 2
  assert "no run directory" in capsys.readouterr().err
  workdir = _trained(tmp_path, "ae_dense")
  saved = json.loads((workdir / "config.json").read_text())
  saved["config"]["model"]["code_dim"] += 1  # the checkpoint no longer matches the model
  (workdir / "config.json").write_text(json.dumps(saved))
  before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  assert main.main(["eval", "--workdir", str(workdir)]) == 2
  err = capsys.readouterr().err.strip()
  assert "corrupt or does not match this model" in err and "\n" not in err
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before
  assert main.main(["eval", "--workdir", str(workdir), "--num_samples", "0"]) == 2
  assert "num_samples must be a positive integer" in capsys.readouterr().err


def test_restore_target_is_abstract_and_placed_on_this_process_devices():
  c = small_config("gan")
  target = evaluate.restore_target(MODELS["gan"], c, (28, 28, 1))
  leaves = jax.tree.leaves(target)
  assert leaves and all(isinstance(a, jax.ShapeDtypeStruct) for a in leaves)
  assert all(a.sharding.device_set == set(jax.devices()) for a in leaves)


def test_leaderboard_tables_every_run_and_reuses_fresh_results(feature_net, tmp_path, monkeypatch):
  root = tmp_path / "runs"
  _trained(root, "ae_dense")
  _trained(root, "gan_mlp")
  (root / "notes").mkdir()
  (root / "notes" / "config.json").write_text("{}")  # not a run: skipped
  text = evaluate.leaderboard(root, **FAST, quiet=True)
  assert (root / "leaderboard.md").read_text() == text
  assert "| `ae_dense` | ae_dense | mnist | 4 |" in text and "| `gan_mlp` | gan_mlp | mnist | 4 |" in text
  assert "Feature network" in text and "## Generators" in text and "## Autoencoders" in text
  monkeypatch.setattr(evaluate, "evaluate_run", lambda *a, **k: pytest.fail("re-evaluated a fresh result"))
  assert evaluate.leaderboard(root, **FAST, quiet=True) == text


def test_population_members_are_scored_with_mean_and_std(feature_net, tmp_path):
  c = small_config("vae_dense", steps=4, sample_every=4, checkpoint_every=4, log_every=4)
  c.population, c.sweep = 2, "step.beta=0.5,2"
  train.train(c, tmp_path / "pop", quiet=True)
  result = evaluate.evaluate_run(tmp_path / "pop", **FAST)
  assert result["population"] == 2 and result["sweep"] == {"step.beta": [0.5, 2.0]}
  members = [json.loads((tmp_path / "pop" / "members" / str(i) / "eval.json").read_text()) for i in range(2)]
  for key in ("fid", "neg_elbo", "nll"):
    values = [m[key] for m in members]
    assert result[key]["values"] == values
    assert result[key]["mean"] == pytest.approx(np.mean(values)) and result[key]["std"] == pytest.approx(np.std(values))
  assert json.loads((tmp_path / "pop" / "eval.json").read_text())["fid"] == result["fid"]
