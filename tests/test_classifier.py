"""The class-counting CNN: augmentation, a short training run through the shared loop, and its error message."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import classifier, train
from genjax.errors import UserError


def test_random_shift_translates_with_zero_fill():
  x = jnp.arange(2 * 5 * 5, dtype=jnp.float32).reshape(2, 5, 5, 1) + 1.0
  np.testing.assert_array_equal(classifier.random_shift(x, jax.random.PRNGKey(0), 0), x)
  y = classifier.random_shift(x, jax.random.PRNGKey(1), 2)
  assert y.shape == x.shape
  for i in range(2):  # each output is the input moved by some (dy, dx) in [-2, 2]^2, zeros where it left
    matches = []
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        moved = np.zeros((5, 5))
        src = np.asarray(x[i, :, :, 0])
        for r in range(5):
          for c in range(5):
            if 0 <= r - dy < 5 and 0 <= c - dx < 5:
              moved[r, c] = src[r - dy, c - dx]
        matches.append(np.array_equal(moved, np.asarray(y[i, :, :, 0])))
    assert sum(matches) == 1


def test_short_training_learns_and_predicts(tmp_path):
  c = classifier.get_config("mnist")
  c.data.train_limit = 2048
  c.train.batch_size = 32
  c.train.steps, c.train.log_every, c.train.sample_every, c.train.checkpoint_every = 60, 20, 60, 60
  c.optim.decay_steps = 60
  c.optim.warmup_steps = 5
  state = train.train(c, tmp_path, quiet=True, family=classifier.FAMILY).state
  test = classifier.data.load("mnist", "test", 1000)
  pred = classifier.predict(state, test.images)
  assert pred.shape == (1000,)
  assert np.mean(pred == test.labels) > 0.5  # chance is 0.1
  assert classifier.features(state, test.images[:3]).shape == (3, 128)
  assert classifier.class_histogram(state, test.images).sum() == 1000


def test_missing_classifier_says_how_to_train_it(tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, "ROOT", tmp_path)
  with pytest.raises(UserError, match="make classifier DATASET=mnist"):
    classifier.load.__wrapped__("mnist", train_if_missing=False)


def test_max_pool_2x2_matches_linen():
  import flax.linen as nn

  from genjax.models import nets
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 6, 3))
  np.testing.assert_array_equal(nets.max_pool_2x2(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_random_flip_mirrors_about_half_the_images():
  x = jax.random.normal(jax.random.PRNGKey(0), (400, 4, 5, 1))
  y = classifier.random_flip(x, jax.random.PRNGKey(1))
  mirrored = np.array([np.array_equal(y[i], x[i, :, ::-1]) for i in range(len(x))])
  unchanged = np.array([np.array_equal(y[i], x[i]) for i in range(len(x))])
  assert np.all(mirrored ^ unchanged) and 150 < mirrored.sum() < 250


def test_fashion_config_trains_batch_norm_statistics():
  c = classifier.get_config("fashion_mnist")
  assert c.model.batch_norm and c.step.flip and c.step.shift == 0
  assert c.train.steps == c.optim.decay_steps == 6000  # the cosine schedule ends where training does
  batch = {"image": jax.random.uniform(jax.random.PRNGKey(0), (8, 28, 28, 1)), "label": jnp.arange(8) % 10}
  state = classifier.init_state(jax.random.PRNGKey(1), c, batch)
  new, metrics = jax.jit(lambda s, b, r: classifier.train_step(s, b, r, **c.step))(state, batch, jax.random.PRNGKey(2))
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new.batch_stats, state.batch_stats)
  assert jax.tree.leaves(moved) and all(jax.tree.leaves(moved)) and np.isfinite(metrics["loss"])
  assert classifier.eval_step(new, batch, None)["correct"].shape == (8,)
