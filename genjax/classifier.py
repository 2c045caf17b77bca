"""A small CNN classifier per dataset: counts the classes a generator covers, and gives a feature space.

It is a `Family` (FAMILY, not in the model registry), so `genjax.train.train` trains it with the same data
pipeline, checkpoints and logs as the generative models. `load(dataset)` returns a trained one, training it into
`runs/classifier/<dataset>/` on first use.
"""

from __future__ import annotations

import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import checkpoint, data
from genjax import config as cfg
from genjax.errors import UserError
from genjax.eval import provenance
from genjax.models import nets
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key

ROOT = pathlib.Path("runs/classifier")


class CNN(nn.Module):
  """Two blocks of a 3x3 conv and a 2x2 max-pool, a dense feature layer, then class logits. One conv per block:
  a second 3x3 conv at full resolution makes a step several times dearer on CPU (docs/kernels.md). The convs and
  pools are `nets.Conv` (nn.Conv, computing through genjax.kernels on CPU) and `nets.max_pool_2x2`, with nn.Conv's
  and nn.max_pool's parameters and values; docs/kernels.md has what they gain on CPU."""
  num_classes: int = 10
  features: tuple = (32, 64)
  hidden: int = 128
  dropout: float = 0.3
  batch_norm: bool = False  # after each conv

  @nn.compact
  def __call__(self, x, train: bool = False, return_features: bool = False, axis_name=None):
    h = x * 2.0 - 1.0
    for f in self.features:
      h = nets.Conv(f, (3, 3), use_bias=not self.batch_norm)(h)
      if self.batch_norm:  # axis_name: statistics of the global batch under shard_map/pmap
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=axis_name)(h)
      h = nets.max_pool_2x2(nn.relu(h))
    h = nn.relu(nets.Dense(self.hidden, name="features")(h.reshape(h.shape[0], -1)))
    if return_features:
      return h
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return nets.Dense(self.num_classes, name="logits")(h)


def get_config(dataset: str = "mnist") -> ml_collections.ConfigDict:
  """4000 steps of 128 (8.5 epochs of MNIST) with cosine decay; Fashion-MNIST: mirroring instead of shifts, 6000
  steps. What the recipes reach: docs/kernels.md, design choices."""
  c = cfg.base()
  c.model.name = "classifier"
  c.model.num_classes = 10
  c.model.features = (32, 64)
  c.model.hidden = 128
  c.model.dropout = 0.3
  c.model.batch_norm = False
  c.data.name = dataset
  c.optim.lr = 1e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 100
  c.optim.decay_steps = 4000
  c.step.shift = 2
  c.step.flip = False
  c.train.steps = 4000
  c.train.batch_size = 128
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  if dataset == "fashion_mnist":
    # Clothes are mirror-symmetric, digits are not. Under shifts the training accuracy stayed at the test accuracy
    # (this network cannot fit shifted clothes in 4000 steps), so: no shifts, and 6000 steps.
    c.step.shift = 0
    c.step.flip = True
    c.model.batch_norm = True
    c.train.steps = c.optim.decay_steps = 6000
  return c


def validate(config) -> None:
  if config.model.num_classes < 2:
    raise UserError(f"model.num_classes must be at least 2, got {config.model.num_classes}")
  if not 0.0 <= config.model.dropout < 1.0:
    raise UserError(f"model.dropout must be in [0, 1), got {config.model.dropout}")


def _module(config) -> CNN:
  m = config.model
  return CNN(m.num_classes, tuple(m.features), m.hidden, m.dropout, m.get("batch_norm", False))


def init_state(rng, config, example_batch) -> TrainState:
  module = _module(config)
  variables = module.init(rng, example_batch["image"][:1])
  return TrainState.create(apply_fn=module.apply, variables=variables, tx=make_tx(config.optim))


def random_shift(x_BxHxWxC, rng, shift: int):
  """Translates each image by up to `shift` pixels in each direction, filling with zeros (data augmentation)."""
  if shift == 0:
    return x_BxHxWxC
  b, h, w, _ = x_BxHxWxC.shape
  padded = jnp.pad(x_BxHxWxC, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
  offsets = jax.random.randint(rng, (b, 2), 0, 2 * shift + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def random_flip(x_BxHxWxC, rng):
  """Mirrors each image left-right with probability 1/2 (data augmentation)."""
  flip = jax.random.bernoulli(rng, 0.5, (x_BxHxWxC.shape[0], 1, 1, 1))
  return jnp.where(flip, x_BxHxWxC[:, :, ::-1], x_BxHxWxC)


def train_step(state, batch, rng, *, shift: int = 2, flip: bool = False, axis_name=None):
  """One Adam step on the mean cross-entropy of randomly shifted (and, with `flip`, mirrored) images."""
  rng = step_key(rng, state.step, axis_name)
  k_shift, k_drop = jax.random.split(rng)
  x = random_shift(batch["image"], k_shift, shift)
  if flip:  # its own key, so the runs without flips keep their random stream
    x = random_flip(x, jax.random.fold_in(rng, 1))

  def loss_fn(params):
    logits, updates = state.apply_fn({**state.variables, "params": params}, x, train=True, rngs={"dropout": k_drop},
                                     axis_name=axis_name, mutable=["batch_stats"])
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], axis=1)[:, 0]
    return jnp.mean(nll), (logits, updates.get("batch_stats", {}))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name), batch_stats=pmean(batch_stats, axis_name))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  return state, pmean({"loss": loss, "accuracy": accuracy}, axis_name)


def eval_step(state, batch, rng):
  """Per-example cross-entropy and correctness, each [B]."""
  del rng
  logits = state.apply_fn(state.variables, batch["image"])
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], axis=1)[:, 0]
  return {"loss": nll, "correct": (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)}


@jax.jit
def _logits(state, x):
  return state.apply_fn(state.variables, x)


@jax.jit
def _features(state, x):
  return state.apply_fn(state.variables, x, return_features=True)


def _as_input(images):
  """uint8 images as float32 x / 255; float images (in [0, 1]) as float32."""
  x = jnp.asarray(images)
  return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)


def _batched(fn, state, images, batch_size: int = 1000) -> np.ndarray:
  """fn over uint8 or float images in chunks; floats must be in [0, 1]."""
  return data.batched(lambda x: fn(state, _as_input(x)), images, batch_size=batch_size, desc="classifier")


def predict(state, images) -> np.ndarray:
  """Predicted labels int [N] of images ([N, H, W, C] uint8, or float in [0, 1])."""
  return _batched(_logits, state, images).argmax(-1)


def probabilities(state, images) -> np.ndarray:
  """Class probabilities [N, num_classes] of images ([N, H, W, C] uint8, or float in [0, 1])."""
  return np.asarray(jax.nn.softmax(_batched(_logits, state, images), axis=-1))


def features(state, images) -> np.ndarray:
  """The 128-d penultimate activations [N, hidden]."""
  return _batched(_features, state, images)


def accuracy(state, dataset: str) -> float:
  test = data.load(dataset, "test")
  return float(np.mean(predict(state, test.images) == test.labels))


FAMILY = Family("classifier", init_state, train_step, eval_step, validate)


def workdir(dataset: str) -> pathlib.Path:
  return ROOT / dataset


@functools.cache
def load(dataset: str = "mnist", *, train_if_missing: bool = True, quiet: bool = True):
  """The trained classifier of `dataset` (training it into `runs/classifier/<dataset>/` when there is none)."""
  from genjax import train
  config = get_config(dataset)
  directory = workdir(dataset)
  ckpts = checkpoint.Checkpoints(directory / "checkpoints")
  done = ckpts.latest_step() == config.train.steps
  ckpts.close()
  if not done:
    if not train_if_missing:
      raise UserError(f"no trained classifier for {dataset} in {directory}; run: make classifier DATASET={dataset}")
    train.train(config, directory, quiet=quiet, family=FAMILY)
  ds = data.load(dataset, "test")
  example = {"image": jnp.zeros((1, *ds.images.shape[1:]), jnp.float32), "label": jnp.zeros((1,), jnp.int32)}
  ckpts = checkpoint.Checkpoints(directory / "checkpoints")
  state = ckpts.restore(init_state(jax.random.PRNGKey(0), config, example))
  ckpts.close()
  report = directory / "accuracy.json"
  if not report.exists():
    provenance.write_json(report, {"dataset": dataset, "test_accuracy": accuracy(state, dataset)})
  return state


def class_histogram(state, images, num_classes: int = 10) -> np.ndarray:
  """How many of `images` the classifier assigns to each class."""
  return np.bincount(predict(state, images), minlength=num_classes)
