"""genjax.eval.run: every model restored and scored by its blocks, sample files, populations, and the one-line
errors of make eval; with a small classifier trained here as the feature network (the other test_eval_* import it)."""

import json

import numpy as np
import pytest
from conftest import small_config

from genjax import classifier, data, main, models, train
from genjax.errors import UserError
from genjax.eval import generator
from genjax.eval import run as evaluation
from genjax.models import MODELS


@pytest.fixture(scope="module")
def feature_net(tmp_path_factory):
  """A 150-step classifier in a temporary ROOT, standing in for runs/classifier (which takes minutes). It is trained
  once per test process: the modules that use it find it in the same folder."""
  root = tmp_path_factory.getbasetemp() / "eval-classifier"
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
    generator.clear_caches()
    yield root
    classifier.load.cache_clear()
    generator.clear_caches()


def trained(tmp_path, model, steps=4, **train_overrides):
  c = small_config(model, steps=steps, sample_every=steps, checkpoint_every=steps, log_every=steps,
                   **train_overrides)
  train.train(c, tmp_path / model, quiet=True)
  return tmp_path / model


FAST = dict(num_samples=300, nll_k=20, nll_examples=40, num_reference=500)


# One of each kind of metric block, with the variants that need their own code path (a VAE conditioned on labels, a
# DAE's denoising); the other models run with `make test-slow`. The GAN is the MLP one: the DCGAN's generator block
# is the same code, and its case took 32 s of a 2-core make test (its samples are scored by test_bench_quality).
QUICK_MODELS = ("gan_mlp", "vae_dense", "cvae", "dae")


@pytest.mark.parametrize("model", [m if m in QUICK_MODELS else pytest.param(m, marks=pytest.mark.slow)
                                   for m in sorted(MODELS)])
def test_every_model_restores_and_gets_its_metrics(feature_net, tmp_path, model):
  workdir = trained(tmp_path, model)
  result = evaluation.evaluate_run(workdir, **FAST)
  assert result["model"] == model and result["step"] == 4
  assert ("label_accuracy" in result) == (model in ("cvae", "cgan"))  # the conditional generators
  saved = json.loads((workdir / "eval.json").read_text())
  assert saved["fid" if "fid" in result else "step"] == result["fid" if "fid" in result else "step"]
  p = result["protocol"]
  assert p["dataset"] == "mnist" and p["seed"] == 0 and "device" in p and "jax" in p["versions"]
  kind = models.get(model).kind
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


@pytest.mark.slow
def test_a_gan_with_a_generator_average_is_scored_on_it_and_raw_apart(feature_net, tmp_path):
  """make eval scores the average's samples (eval.json); --raw_generator the generator's own, in eval-raw.json and
  eval-raw/, leaving eval.json as it was. A model without an average refuses the switch in one line."""
  workdir = trained(tmp_path, "wgan")  # no average: the switch is refused
  with pytest.raises(UserError, match="--raw_generator applies to GANs that .* wgan in .* has no generator average"):
    evaluation.evaluate_run(workdir, **FAST, raw_generator=True)
  c = small_config("gan_mlp", steps=4, sample_every=4, checkpoint_every=4, log_every=4)
  c.step.ema_decay, c.step.ema_start = 0.9, 0  # an average from the first update, so that it differs
  train.train(c, tmp_path / "ema", quiet=True)
  averaged = evaluation.evaluate_run(tmp_path / "ema", **FAST)
  before = (tmp_path / "ema" / "eval.json").read_text()
  raw = evaluation.evaluate_run(tmp_path / "ema", **FAST, raw_generator=True)
  assert raw["settings"]["raw_generator"] is True and "raw_generator" not in averaged["settings"]
  assert raw["fid"] != averaged["fid"]  # other weights, other samples
  assert (tmp_path / "ema" / "eval.json").read_text() == before
  assert json.loads((tmp_path / "ema" / "eval-raw.json").read_text())["fid"] == raw["fid"]
  assert (tmp_path / "ema" / "eval-raw" / "samples.png").exists()
  assert MODELS["vae_dense"].raw_generator is None  # refused the same way as wgan's run above


def test_truncation_replaces_the_runs_own_and_is_written_apart(feature_net, tmp_path):
  """make eval --truncation T scores samples of latents truncated at T instead of the run's model.truncation, in
  eval-truncation<T>.json, leaving eval.json as it was; a model without latents to truncate, or T < 0, is refused
  in one line."""
  c = small_config("gan_mlp", steps=4, sample_every=4, checkpoint_every=4, log_every=4)
  c.model.truncation = 1.0
  train.train(c, tmp_path / "gan", quiet=True)
  truncated = evaluation.evaluate_run(tmp_path / "gan", **FAST)
  assert truncated["protocol"]["latent_truncation"] == 1.0 and "truncation" not in truncated["settings"]
  before = (tmp_path / "gan" / "eval.json").read_text()
  plain = evaluation.evaluate_run(tmp_path / "gan", **FAST, truncation=0.0)
  assert plain["settings"]["truncation"] == 0.0 and "latent_truncation" not in plain["protocol"]
  assert plain["fid"] != truncated["fid"]
  assert (tmp_path / "gan" / "eval.json").read_text() == before
  assert json.loads((tmp_path / "gan" / "eval-truncation0.json").read_text())["fid"] == plain["fid"]
  with pytest.raises(UserError, match="truncation must be >= 0"):
    evaluation.evaluate_run(tmp_path / "gan", **FAST, truncation=-1.0)
  with pytest.raises(UserError, match="--truncation applies to GANs; vae_dense"):
    evaluation.evaluate_run(trained(tmp_path, "vae_dense"), **FAST, truncation=0.0)


def test_same_checkpoint_and_seed_give_the_same_numbers(feature_net, tmp_path):
  workdir = trained(tmp_path, "vae_dense")
  a = evaluation.evaluate_run(workdir, **FAST, write=False)
  b = evaluation.evaluate_run(workdir, **FAST, write=False)
  c = evaluation.evaluate_run(workdir, **FAST, seed=1, write=False)
  for key in ("fid", "kid", "precision", "recall", "neg_elbo", "nll"):
    assert a[key] == b[key], key
  assert a["fid"] != c["fid"] and a["nll"] != c["nll"]


def test_a_samples_file_is_scored_like_a_model(feature_net, tmp_path):
  images = data.load("mnist", "test").images
  path = tmp_path / "real.npz"
  np.savez(path, images=images[:500])
  result = evaluation.evaluate_samples(path, "mnist", num_reference=1000)
  assert json.loads((tmp_path / "real.eval.json").read_text())["fid"] == result["fid"]
  assert result["classes_covered"] == 10 and result["precision"] > 0.8 and result["recall"] > 0.8
  ones = images[data.load("mnist", "test").labels == 1][:300]
  np.savez(tmp_path / "ones.npz", images=ones)
  collapsed = evaluation.evaluate_samples(tmp_path / "ones.npz", "mnist", tmp_path / "out.json", num_reference=1000)
  assert collapsed["classes_covered"] == 1 and collapsed["class_kl"] > 1.5
  assert collapsed["fid"] > 5 * result["fid"]
  assert (tmp_path / "out.json").exists()


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
    evaluation.load_samples(path)


def test_bad_runs_get_one_line_and_nothing_is_lost(tmp_path, capsys):
  assert main.main(["eval", "--workdir", str(tmp_path / "missing")]) == 2
  assert "no run directory" in capsys.readouterr().err
  workdir = trained(tmp_path, "ae_dense")
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


def test_population_members_are_scored_with_mean_and_std(feature_net, tmp_path):
  c = small_config("vae_dense", steps=4, sample_every=4, checkpoint_every=4, log_every=4)
  c.population, c.sweep = 2, "step.beta=0.5,2"
  train.train(c, tmp_path / "pop", quiet=True)
  result = evaluation.evaluate_run(tmp_path / "pop", **FAST)
  assert result["population"] == 2 and result["sweep"] == {"step.beta": [0.5, 2.0]}
  members = [json.loads((tmp_path / "pop" / "members" / str(i) / "eval.json").read_text()) for i in range(2)]
  for key in ("fid", "neg_elbo", "nll"):
    values = [m[key] for m in members]
    assert result[key]["values"] == values
    assert result[key]["mean"] == pytest.approx(np.mean(values)) and result[key]["std"] == pytest.approx(np.std(values))
  assert json.loads((tmp_path / "pop" / "eval.json").read_text())["fid"] == result["fid"]
