"""Evaluation from checkpoints and from sample files: quality metrics, each result stamped with its protocol.

`evaluate_run(workdir)` restores the latest checkpoint of any registered model into a target built for the devices
this process has (no training loop involved) and writes `workdir/eval.json` and pictures under `workdir/eval/`.
`evaluate_samples(path, dataset)` scores a `uint8 [N, H, W, C]` array of images from anywhere the same way.
`leaderboard(root)` evaluates every run under `root` and writes a markdown table.

What is measured is what the family's `blocks` name (genjax.models.family): `generator` scores samples in the
feature space of the project's classifier, `conditional` the label accuracy of `sample_class`, `likelihood` gives
`neg_elbo` and an importance-weighted `nll` on a binarized test set, `reconstruction` the test-set reconstruction.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import checkpoint, classifier, data, inception, metrics, models, pictures, xla
from genjax.errors import UserError
from genjax.models.family import bind

NUM_SAMPLES = 10000
NLL_K = 5000
NEIGHBOURS = 5  # nearest training images shown per generated sample
BINARIZATION = ("test images binarized once: x_bin = 1[u < x] with u ~ U[0, 1) from fold_in(PRNGKey(seed), 1000003) "
                "and x = uint8/255 (one draw of dynamic binarization). The VAEs train on grey levels as Bernoulli "
                "targets, whose log-likelihood is the expectation of the dynamically binarized one")


@dataclasses.dataclass
class Run:
  """A restored run: its config, model family and state at `step`."""
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  family: object
  state: object
  step: int
  image_shape: tuple


def replicated():
  """A sharding that puts a whole array on every device of this process (one device: just that device)."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _read_config(workdir: pathlib.Path) -> tuple[ml_collections.ConfigDict, tuple]:
  path = workdir / "config.json"
  if not path.exists():
    raise UserError(f"{workdir} is not a training run (no config.json); train one with make train MODEL=<name>")
  try:
    saved = json.loads(path.read_text())
    config = ml_collections.ConfigDict(saved["config"])
    return config, tuple(saved["image_shape"])
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{path} is unreadable ({e}); it was left untouched") from e


def restore_target(family, config, image_shape) -> object:
  """The state's structure with abstract leaves placed on this process's devices: built by tracing `init_state`
  (no initializer runs), so a restore on 1 GPU, 8 TPU cores or a CPU reads the same checkpoint."""
  if family.prepare is not None:  # GMMN+AE: its frozen autoencoder is part of the state
    family = family.prepare(config, data.load(config.data.name, "train", config.data.train_limit).images)
  per_step = family.examples_per_step(config)
  example = {"image": jnp.zeros((per_step, *image_shape), jnp.float32), "label": jnp.zeros((per_step,), jnp.int32)}
  init = functools.partial(family.init_state, config=config, example_batch=example)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  sharding = replicated()
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)


def load_run(workdir, step: int | None = None) -> Run:
  """Restores `step` (default: the latest checkpoint) of the run in `workdir`."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise UserError(f"no run directory {workdir}")
  config, image_shape = _read_config(workdir)
  family = models.get(config.model.name)
  ckpts = checkpoint.Checkpoints(workdir / "checkpoints")
  try:
    step = ckpts.latest_step() if step is None else step
    if step is None:
      raise UserError(f"{workdir} has no checkpoint yet; train it first with make train MODEL={config.model.name}")
    state = ckpts.restore(restore_target(family, config, image_shape), step)
  finally:
    ckpts.close()
  return Run(workdir, config, family, state, int(step), image_shape)


def kind(model: str) -> str:
  """'vae', 'generator' or 'autoencoder': the leaderboard table a registered model's runs appear in."""
  return models.get(model).kind


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
def _real_features(dataset: str, num_reference: int):
  state, _ = feature_network(dataset)
  images = data.load(dataset, "test").images[:num_reference]
  return classifier.features(state, images), len(images)


def generator_metrics(dataset: str, images_u8: np.ndarray, seed: int, num_reference: int = NUM_SAMPLES,
                      inception_weights: str | None = None) -> tuple[dict, dict]:
  """The generator block of metrics for uint8 images, against the first `num_reference` images of the test split;
  and its part of the protocol. With `inception_weights` (pytorch-fid's .pth), also `inception_fid` and
  `inception_kid` in pytorch-fid's feature space."""
  state, card = feature_network(dataset)
  real, n_real = _real_features(dataset, num_reference)
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


# ------------------------------------------------------------------------------------------------ per-family blocks


def _in_batches(draw, key, n: int, batch: int) -> np.ndarray:
  """uint8 images from draw(fold_in(key, i), start, stop) for the i-th batch [start, stop) of n."""
  return to_uint8(np.concatenate([np.asarray(draw(jax.random.fold_in(key, i), start, min(start + batch, n)))
                                  for i, start in enumerate(range(0, n, batch))]))


def draw_samples(run: Run, n: int, seed: int, batch: int = 1000) -> np.ndarray:
  """n samples as uint8 [n, H, W, C], batch i drawn with fold_in(PRNGKey(seed), i)."""
  sample = jax.jit(run.family.sample, static_argnums=2)
  return _in_batches(lambda key, start, stop: sample(run.state, key, stop - start), jax.random.PRNGKey(seed), n,
                     batch)


def label_accuracy(run: Run, dataset: str, n: int, seed: int, batch: int = 1000) -> float:
  """A conditional generator's accuracy: the fraction of n samples, drawn by `sample_class` for the labels 0, 1,
  ..., num_classes - 1 in turn, that the evaluation classifier assigns to the label they were drawn for."""
  labels = np.arange(n) % int(run.config.model.num_classes)
  sample = jax.jit(run.family.sample_class)
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # draws of their own, apart from draw_samples'
  images = _in_batches(lambda key, start, stop: sample(run.state, key, labels[start:stop]), key, n, batch)
  state, _ = feature_network(dataset)
  return float(np.mean(np.argmax(classifier.probabilities(state, images), axis=-1) == labels))


def to_uint8(x) -> np.ndarray:
  return np.round(np.clip(np.asarray(x, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def binarize(images_u8: np.ndarray, seed: int) -> np.ndarray:
  """The fixed binarization of BINARIZATION, float32 {0, 1}."""
  u = jax.random.uniform(jax.random.fold_in(jax.random.PRNGKey(seed), 1000003), images_u8.shape)
  return np.asarray(u < images_u8.astype(np.float32) / 255.0, np.float32)


def likelihood_metrics(run: Run, seed: int, k: int, examples: int, batch: int = 50, chunk: int = 250) -> dict:
  """neg_elbo and nll (nats per image) from the same k importance samples of each binarized test image."""
  test = data.load(run.config.data.name, "test")
  examples = min(examples, len(test.images))
  x_all, y_all = binarize(test.images[:examples], seed), test.labels[:examples]

  @jax.jit
  def one(state, x, y, rng):
    return run.family.likelihood_bounds(state, x, y, rng, k, chunk=chunk)

  key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
  bound, elbo = [], []
  for i, start in enumerate(range(0, examples, batch)):
    b, e = one(run.state, jnp.asarray(x_all[start:start + batch]), jnp.asarray(y_all[start:start + batch]),
               jax.random.fold_in(key, i))
    bound.append(np.asarray(b))
    elbo.append(np.asarray(e))
  bound, elbo = np.concatenate(bound).astype(np.float64), np.concatenate(elbo).astype(np.float64)
  return {"neg_elbo": float(-elbo.mean()), "nll": float(-bound.mean()),
          "neg_elbo_se": float(elbo.std(ddof=1) / np.sqrt(len(elbo))) if len(elbo) > 1 else 0.0}


def reconstruction_metrics(run: Run, seed: int, batch: int = 500) -> dict:
  """Means over the test split of the family's per-example eval_step metrics (mse, bce, psnr; a DAE's denoising)."""
  test = data.load(run.config.data.name, "test")
  step = jax.jit(bind(run.family.eval_step, run.config.step))
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 11)
  sums: dict[str, float] = {}
  for i, start in enumerate(range(0, len(test.images), batch)):
    x = jnp.asarray(test.images[start:start + batch], jnp.float32) / 255.0
    per = step(run.state, {"image": x, "label": jnp.asarray(test.labels[start:start + batch])},
               jax.random.fold_in(key, i))
    for name, v in per.items():
      sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(v, np.float64)))
  keep = ("mse", "bce", "psnr", "denoise_psnr", "denoise_mse", "noisy_psnr")
  return {name: total / len(test.images) for name, total in sums.items() if name in keep}


# -------------------------------------------------------------------------------------------------------- pictures


def save_neighbours(path, samples_u8, train_u8, rows: int = 10) -> None:
  """Each row: a generated sample, then its NEIGHBOURS nearest training images in pixel L2 (memorization shows as
  near-copies)."""
  fake = samples_u8[:rows].reshape(rows, -1).astype(np.float32)
  real = train_u8.reshape(len(train_u8), -1).astype(np.float32)
  nearest = []
  for f in fake:
    d = np.sum(real * real, axis=1) - 2.0 * real @ f
    nearest.append(np.argsort(d)[:NEIGHBOURS])
  tiles = []
  for i in range(rows):
    tiles += [samples_u8[i]] + [train_u8[j] for j in nearest[i]]
  pictures.save_grid(path, np.stack(tiles).astype(np.float32) / 255.0, ncol=NEIGHBOURS + 1)


def _pictures(run: Run, out: pathlib.Path, samples_u8) -> list[str]:
  saved = []
  if samples_u8 is not None:
    pictures.save_grid(out / "samples.png", samples_u8[:100].astype(np.float32) / 255.0, ncol=10)
    save_neighbours(out / "nearest_training.png", samples_u8, data.load(run.config.data.name, "train").images)
    saved += ["samples.png", "nearest_training.png"]
  if run.family.reconstruct is not None:
    x = data.load(run.config.data.name, "test").images[:32].astype(np.float32) / 255.0
    pictures.save_reconstructions(out / "reconstructions.png", x, jax.jit(run.family.reconstruct)(run.state, x))
    saved.append("reconstructions.png")
  return saved


# ---------------------------------------------------------------------------------------------------- entry points


def environment() -> dict:
  import flax
  import optax
  import orbax.checkpoint
  return {"versions": {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__
                       if hasattr(jax.lib, "__version__") else jax.__version__, "flax": flax.__version__,
                       "optax": optax.__version__, "orbax-checkpoint": orbax.checkpoint.__version__,
                       "numpy": np.__version__},
          "device": f"{jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()})",
          "cpu": cpu_name(), "malloc": xla.host_malloc()}


def cpu_name() -> str:
  """The host CPU's model name and core count, e.g. 'AMD EPYC, 2 cores'."""
  import os
  name = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        name = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{name}, {os.cpu_count()} cores"


def evaluate_run(workdir, *, num_samples: int = NUM_SAMPLES, seed: int = 0, nll_k: int = NLL_K,
                 nll_examples: int = 10000, num_reference: int = NUM_SAMPLES, inception_weights: str | None = None,
                 write: bool = True) -> dict:
  """Every metric that applies to the run in `workdir`, with its protocol; writes eval.json and eval/*.png.

  Generators are scored on `num_samples` samples against `num_reference` test images; VAE likelihoods on the first
  `nll_examples` test images with `nll_k` importance samples each. `inception_weights` adds Inception FID and KID.
  A population's directory (population.json) has each member scored, and mean and std over members."""
  settings = dict(num_samples=num_samples, seed=seed, nll_k=nll_k, nll_examples=nll_examples,
                  num_reference=num_reference, inception_weights=inception_weights, write=write)
  if (pathlib.Path(workdir) / "population.json").exists():
    return evaluate_population(workdir, **settings)
  check_settings(num_samples=num_samples, nll_k=nll_k, nll_examples=nll_examples, num_reference=num_reference)
  if inception_weights:
    inception.load(str(inception_weights))  # a bad weights file fails here, before any sampling
  t0 = time.perf_counter()
  run = load_run(workdir)
  model, dataset = run.config.model.name, run.config.data.name
  what = run.family.kind
  result: dict = {"model": model, "dataset": dataset, "kind": what, "step": run.step,
                  "settings": {"num_samples": num_samples, "seed": seed, "nll_k": nll_k, "nll_examples": nll_examples,
                               "num_reference": num_reference, **_inception_setting(inception_weights)}}
  protocol: dict = {"dataset": dataset, "split": "test", "seed": seed, "checkpoint": str(run.workdir /
                    "checkpoints" / str(run.step))}
  samples = None
  if "generator" in run.family.blocks:
    samples = draw_samples(run, num_samples, seed)
    block, card = generator_metrics(dataset, samples, seed, num_reference, inception_weights)
    result.update(block)
    protocol.update(card)
  if "conditional" in run.family.blocks:
    result["label_accuracy"] = label_accuracy(run, dataset, num_samples, seed)
    protocol["label_accuracy"] = (f"{num_samples} samples drawn by sample_class for labels 0..C-1 in turn; the "
                                  "fraction the feature network classifies as the label they were drawn for")
  if "likelihood" in run.family.blocks:
    result.update(likelihood_metrics(run, seed, nll_k, nll_examples))
    protocol.update({"binarization": BINARIZATION, "nll": f"-log (1/k) sum w_i, k={nll_k} importance samples "
                     f"from q(z|x) per image", "neg_elbo": "-(1/k) sum log w_i from the same k samples",
                     "likelihood_examples": min(nll_examples, len(data.load(dataset, "test").images))})
  if "reconstruction" in run.family.blocks:
    result.update(reconstruction_metrics(run, seed))
    protocol["reconstruction"] = ("test split in [0, 1] (uint8/255); mse: mean over pixels; bce: summed over pixels "
                                  "(nats per image); psnr: per image, then averaged")
  protocol.update(environment())
  result["training"] = training_time(run.workdir)
  result["protocol"] = protocol
  if write:
    out = run.workdir / "eval"
    result["pictures"] = [f"eval/{p}" for p in _pictures(run, out, samples)]
    if samples is not None:
      np.savez_compressed(out / "samples.npz", images=samples)
  result["eval_s"] = round(time.perf_counter() - t0, 1)
  if write:
    _write_json(run.workdir / "eval.json", result)
  return result


def evaluate_population(workdir, **settings) -> dict:
  """Scores every member of a population run (each writes its own eval.json) and summarizes each numeric metric
  as mean, std (over members, ddof=0) and the members' values, in workdir/eval.json."""
  workdir = pathlib.Path(workdir)
  try:
    info = json.loads((workdir / "population.json").read_text())
    members = [workdir / m for m in info["members"]]
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{workdir / 'population.json'} is unreadable ({e}); it was left untouched") from e
  results = [evaluate_run(m, **settings) for m in members]
  first = results[0]
  summary = {}
  for name, value in first.items():
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in ("step", "eval_s"):
      values = [float(r[name]) for r in results]
      summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
  out = {"model": first["model"], "dataset": first["dataset"], "kind": first["kind"], "step": first["step"],
         "population": len(results), "sweep": info.get("sweep", {}), "members": info["members"],
         "settings": first["settings"], **summary, "eval_s": round(sum(r["eval_s"] for r in results), 1)}
  if settings.get("write", True):
    _write_json(workdir / "eval.json", out)
  return out


def load_samples(path) -> np.ndarray:
  """The `images` array of an .npz file, checked to be uint8 [N, H, W, C]."""
  path = pathlib.Path(path)
  try:
    with np.load(path, allow_pickle=False) as f:
      if "images" not in f:
        raise UserError(f"{path} has no array 'images' (it has {sorted(f.files)}); save uint8 [N, H, W, C] under "
                        f"that key")
      images = f["images"]
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path} as .npz: {str(e).splitlines()[0][:200]}") from e
  if images.dtype != np.uint8 or images.ndim != 4:
    raise UserError(f"{path}: 'images' must be uint8 [N, H, W, C], got {images.dtype} {list(images.shape)}")
  if len(images) < 2:
    raise UserError(f"{path}: need at least 2 images to compare distributions, got {len(images)}")
  return images


def evaluate_samples(path, dataset: str, out=None, *, seed: int = 0, num_reference: int = NUM_SAMPLES,
                     inception_weights: str | None = None) -> dict:
  """The generator metrics of the images in `path` against `dataset`'s test split; writes `out` (JSON)."""
  t0 = time.perf_counter()
  images = load_samples(path)
  if inception_weights:
    inception.load(str(inception_weights))
  reference = data.load(dataset, "test").images.shape[1:]
  if images.shape[1:] != reference:
    raise UserError(f"{path}: images are {list(images.shape[1:])} but {dataset} images are {list(reference)}")
  block, card = generator_metrics(dataset, images, seed, num_reference, inception_weights)
  result = {"samples": str(path), "dataset": dataset, "kind": "generator", **block,
            "protocol": {"dataset": dataset, "split": "test", "seed": seed, **card, **environment()},
            "eval_s": round(time.perf_counter() - t0, 1)}
  out = pathlib.Path(out) if out else pathlib.Path(str(path).removesuffix(".npz") + ".eval.json")
  _write_json(out, result)
  return result


def check_settings(**settings) -> None:
  for name, value in settings.items():
    if not isinstance(value, int) or value < 1:
      raise UserError(f"{name} must be a positive integer, got {value!r}")
  if settings.get("num_samples", 2) < 2:
    raise UserError("num_samples must be at least 2")


def _inception_setting(weights) -> dict:
  """The settings entry naming the Inception weights by hash (absent without them, so older eval.json stay current)."""
  return {"inception_sha256": inception.load(str(weights))[1]["weights_sha256"]} if weights else {}


def training_time(workdir: pathlib.Path) -> dict | None:
  path = workdir / "timing.json"
  return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: pathlib.Path, obj) -> None:
  """Written to a temporary file, then renamed: an interrupted write never leaves a half file."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
  tmp.replace(path)


def _json_default(o):
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(type(o).__name__)


# ----------------------------------------------------------------------------------------------------- leaderboard

COLUMNS = {  # kind -> (key, header, format)
    "generator": [("fid", "FID ↓", ".2f"), ("kid", "KID ↓", ".4f"), ("inception_fid", "Inception FID ↓", ".2f"),
                  ("precision", "precision", ".3f"),
                  ("recall", "recall", ".3f"), ("density", "density", ".3f"), ("coverage", "coverage", ".3f"),
                  ("classifier_score", "classifier score", ".2f"), ("classes_covered", "classes", "d"),
                  ("class_kl", "class KL ↓", ".3f"), ("label_accuracy", "label accuracy", ".3f")],
    "vae": [("neg_elbo", "−ELBO (nats) ↓", ".2f"), ("nll", "NLL (nats) ↓", ".2f")],
    "autoencoder": [("mse", "MSE per pixel ↓", ".4f"), ("bce", "BCE (nats) ↓", ".1f"), ("psnr", "PSNR (dB)", ".2f"),
                    ("denoise_psnr", "denoised PSNR (dB)", ".2f")],
}


def find_runs(root) -> list[pathlib.Path]:
  """Every directory under `root` holding a config.json of a registered model and at least one checkpoint."""
  found = []
  for path in sorted(pathlib.Path(root).rglob("config.json")):
    workdir = path.parent
    try:
      model = json.loads(path.read_text())["config"]["model"]["name"]
    except (ValueError, KeyError, TypeError):
      continue
    if model in models.MODELS and any((workdir / "checkpoints").glob("[0-9]*")):
      found.append(workdir)
  return found


def _current(workdir: pathlib.Path, settings: dict) -> dict | None:
  """The run's eval.json when it scored the latest checkpoint with the same settings, else None."""
  path = workdir / "eval.json"
  if not path.exists():
    return None
  try:
    old = json.loads(path.read_text())
  except ValueError:
    return None
  ckpts = checkpoint.Checkpoints(workdir / "checkpoints")
  latest = ckpts.latest_step()
  ckpts.close()
  same = old.get("step") == latest and old.get("settings") == settings
  return old if same else None


def leaderboard(root="runs", out=None, *, num_samples: int = NUM_SAMPLES, seed: int = 0, nll_k: int = NLL_K,
                nll_examples: int = 10000, num_reference: int = NUM_SAMPLES, inception_weights: str | None = None,
                quiet: bool = False) -> str:
  """Evaluates every run under `root` (reusing an eval.json made with the same settings for the same checkpoint)
  and writes the markdown tables to `out` (default root/leaderboard.md)."""
  settings = {"num_samples": num_samples, "seed": seed, "nll_k": nll_k, "nll_examples": nll_examples,
              "num_reference": num_reference}
  rows = []
  for workdir in find_runs(root):
    result = _current(workdir, {**settings, **_inception_setting(inception_weights)})
    if result is None:
      if not quiet:
        print(f"genjax: evaluating {workdir}", flush=True)
      result = evaluate_run(workdir, **settings, inception_weights=inception_weights)
    rows.append((workdir, result))
  text = render(rows, root)
  out = pathlib.Path(out) if out else pathlib.Path(root) / "leaderboard.md"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text)
  return text


def _fmt(value, spec: str) -> str:
  if value is None:
    return "—"
  return format(value, spec)


def render(rows, root) -> str:
  """Markdown: one table per kind of metric, a row per run, then the protocol they share."""
  lines = [f"# genjax leaderboard\n\nEvery run under `{root}/`, scored by `make leaderboard`.\n"]
  for what, title in (("generator", "Generators (samples vs the test split, classifier feature space)"),
                      ("vae", "Likelihoods (binarized test images, nats per image)"),
                      ("autoencoder", "Autoencoders (test split)")):
    picked = [(w, r) for w, r in rows if (what == "generator" and "fid" in r) or (what == "vae" and "nll" in r)
              or (what == "autoencoder" and r.get("kind") == "autoencoder")]
    # A column no run has (Inception FID without the weights, denoising without a DAE) is left out.
    cols = [c for c in COLUMNS[what] if any(r.get(c[0]) is not None for _, r in picked)]
    if not picked:
      continue
    lines.append(f"## {title}\n")
    lines.append("| run | model | data | steps | train time | " + " | ".join(h for _, h, _ in cols) + " |")
    lines.append("|" + "---|" * (5 + len(cols)))
    for workdir, r in picked:
      timing = r.get("training") or {}
      t = f"{timing['train_s']:.0f} s" if timing.get("train_s") is not None else "—"
      cells = [_fmt(r.get(k), f) for k, _, f in cols]
      lines.append(f"| `{workdir.relative_to(root)}` | {r['model']} | {r['dataset']} | {r['step']} | {t} | "
                   + " | ".join(cells) + " |")
    lines.append("")
  protocols = [r["protocol"] for _, r in rows]
  if protocols:
    p = protocols[0]
    card = next((q["feature_network"] for q in protocols if "feature_network" in q), None)
    lines.append("## Protocol\n")
    lines.append(f"- Evaluated on {p['device']}, {p['cpu']}; jax {p['versions']['jax']}, flax {p['versions']['flax']}.")
    trained_on = sorted({d for _, r in rows for d in (r.get("training") or {}).get("devices", [])})
    if trained_on:
      lines.append(f"- Trained on: {', '.join(trained_on)}.")
    if card:
      lines.append(f"- Feature network: {card['name']}, sha256 {card['sha256']}, test accuracy "
                   f"{card['test_accuracy']:.4f}.")
    inc = next((q["inception"] for q in protocols if "inception" in q), None)
    if inc:
      lines.append(f"- Inception FID: {inc['network']}; weights sha256 {inc['weights_sha256'][:16]}"
                   f"{' (pytorch-fid release file)' if inc['is_pytorch_fid_release'] else ''}.")
    nll = next((q for q in protocols if "nll" in q), None)
    if nll:
      lines.append(f"- NLL: {nll['nll']}; {nll['likelihood_examples']} test images. {nll['binarization']}.")
    lines.append("- Train time: wall time of `make train` summed over resumes, compile included, on the device in "
                 "each run's timing.json. Each run's eval.json holds its full protocol.")
  return "\n".join(lines) + "\n"
