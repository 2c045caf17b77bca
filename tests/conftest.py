"""Shared helpers: model configs shrunk to test size."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest-xdist runs several test processes: none may take most of an accelerator's memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from genjax import config as cfg  # noqa: E402


def small_config(model: str, **train):
  """genjax/configs/<model>.py with a short run on the first 512 MNIST training images."""
  c = cfg.model_config(model)
  c.data.train_limit = 512
  c.train.batch_size = 32
  c.train.steps = 8
  c.train.log_every = 2
  c.train.sample_every = 4
  c.train.checkpoint_every = 4
  c.train.num_samples = 8
  for k, v in train.items():
    c.train[k] = v
  return c


def arrays(state):
  """The arrays of a state as nested dicts: two states built by separate init calls carry different static
  `tx` closures, so their pytree definitions differ even when every array is equal."""
  from flax import serialization
  return serialization.to_state_dict(state)

