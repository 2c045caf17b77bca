"""The generator block: samples scored in the feature space of the project's classifier (genjax.classifier) against
the test split, and in pytorch-fid's InceptionV3 space when its weights are given."""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib

import jax
import numpy as np

from genjax import classifier, data, inception, metrics
from genjax.eval.block import NUM_SAMPLES, Scored, Settings

NAME = "generator"


def applies(family) -> bool:
  return NAME in family.blocks


def score(run, settings: Settings) -> Scored:
  """`settings.num_samples` samples of the run, scored against the first `num_reference` test images."""
  samples = draw_samples(run, settings.num_samples, settings.seed)
  block, protocol = generator_metrics(run.config.data.name, samples, settings.seed, settings.num_reference,
                                      settings.inception_weights)
  truncation = getattr(getattr(run.state, "spec", None), "truncation", 0.0)
  if truncation > 0:
    protocol["latent_truncation"] = truncation  # the samples' latents lay in [-t, t] (gans.sampling_latent)
  return Scored(block, protocol, samples)


def to_uint8(x) -> np.ndarray:
  """Images in [0, 1] quantized as the protocol says: uint8 round(255 x)."""
  return np.round(np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def draw_samples(run, n: int, seed: int, batch: int = 1000) -> np.ndarray:
  """n samples as uint8 [n, H, W, C], batch i drawn with fold_in(PRNGKey(seed), i)."""
  sample = jax.jit(run.family.sample, static_argnums=2)
  return to_uint8(data.batched(lambda index, key: sample(run.state, key, len(index)), np.arange(n), batch_size=batch,
                               key=jax.random.PRNGKey(seed), desc="sampling"))


# --------------------------------------------------------------------------------------------- the feature network


@functools.cache
def feature_network(dataset: str):
  """(classifier state, its card): the card names the network by a hash of its weights (and BatchNorm statistics,
  when it has them) and gives its accuracy."""
  state = classifier.load(dataset, quiet=False)
  digest = hashlib.sha256()
  for tree in (state.params, state.batch_stats):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      digest.update(jax.tree_util.keystr(path).encode())
      digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  report = classifier.workdir(dataset) / "accuracy.json"
  accuracy = json.loads(report.read_text())["test_accuracy"] if report.exists() else \
      classifier.accuracy(state, dataset)
  return state, {"name": "genjax.classifier.CNN, 128-d ReLU layer 'features'", "sha256": digest.hexdigest()[:16],
                 "test_accuracy": round(float(accuracy), 5), "checkpoint": str(classifier.workdir(dataset))}


@functools.cache
def reference_features(dataset: str, num_reference: int):
  """(classifier features of the first `num_reference` test images, how many there were); computed once."""
  state, _ = feature_network(dataset)
  images = data.load(dataset, "test").images[:num_reference]
  return classifier.features(state, images), len(images)


def clear_caches() -> None:
  """Forgets the feature networks and reference features computed so far (after the classifier changed)."""
  for cached in (feature_network, reference_features, _inception_reference):
    cached.cache_clear()


def generator_metrics(dataset: str, images_u8: np.ndarray, seed: int, num_reference: int = NUM_SAMPLES,
                      inception_weights: str | None = None) -> tuple[dict, dict]:
  """The generator block of metrics for uint8 images, against the first `num_reference` images of the test split;
  and its part of the protocol. With `inception_weights` (pytorch-fid's .pth), also `inception_fid` and
  `inception_kid` in pytorch-fid's feature space."""
  state, card = feature_network(dataset)
  real, n_real = reference_features(dataset, num_reference)
  fake = classifier.features(state, images_u8)
  probs = classifier.probabilities(state, images_u8)
  result = metrics.generator_metrics(real, fake, probs, num_classes=probs.shape[-1], seed=seed)
  protocol = {"reference": f"{dataset} test split, {n_real} images", "num_samples": int(len(images_u8)),
              "feature_network": card, "samples_quantized": "uint8, round(255 x)",
              "precision_recall_k": 3, "density_coverage_k": 5, "classes_covered_threshold": 0.01,
              "kid": "unbiased MMD^2, cubic polynomial kernel, 100 subsets of min(1000, N)"}
  if inception_weights:
    block, protocol["inception"] = inception_metrics(dataset, images_u8, seed, num_reference, inception_weights)
    result.update(block)
  return result, protocol


# ------------------------------------------------------------------------------------------------------- Inception


def inception_metrics(dataset: str, images_u8: np.ndarray, seed: int, num_reference: int, weights: str
                      ) -> tuple[dict, dict]:
  """FID and KID in pytorch-fid's InceptionV3 pool3 space; the test split's features are cached on disk, keyed by
  the weights' sha256 (10,000 images take minutes on a CPU)."""
  params, card = inception.load(str(weights))
  real = _inception_reference(dataset, num_reference, str(weights))
  fake = inception.features(params, images_u8)
  kid = metrics.kid(real, fake, seed=seed)
  return ({"inception_fid": metrics.fid(real, fake), "inception_kid": kid["kid"], "inception_kid_std": kid["kid_std"]},
          {**card, "reference": f"{dataset} test split, {len(real)} images"})


def inception_cache() -> pathlib.Path:
  return data.cache_dir() / "inception"


@functools.cache
def _inception_reference(dataset: str, num_reference: int, weights: str) -> np.ndarray:
  params, card = inception.load(weights)
  images = data.load(dataset, "test").images[:num_reference]
  path = inception_cache() / f"{dataset}-test-{len(images)}-{card['weights_sha256'][:16]}.npy"
  if path.exists():
    return np.load(path)
  feats = inception.features(params, images)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(".tmp.npy")
  np.save(tmp, feats)
  tmp.replace(path)
  return feats
