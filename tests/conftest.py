"""Shared helpers: model configs shrunk to test size; the environment every test process and the processes it
starts run in (precision, memory, a compilation cache of the session)."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest-xdist runs several test processes: none may take most of an accelerator's memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# The float32 tests compare with closed forms, float64 NumPy and each other, to 1e-5 or bitwise. On NVIDIA GPUs the
# backend's default float32 matmul and conv is TF32 (a 10-bit mantissa), on TPUs one bfloat16 pass, so the tests pin
# full float32 for this process and the training processes they start; `backend_precision` gives a test the
# backend's own. (On CPU both are exact float32.)
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
# Every train() builds its step anew and each CLI test is a new process, so the tests compile the same programs many
# times (a resumed run, the same small config in several tests). A persistent compilation cache of this session, in
# a temporary directory that the xdist workers and the processes they start inherit (through the variable), lets a
# program compiled once be loaded after (two processes reaching it at once both compile it). The key holds the
# program, the compile options, XLA_FLAGS, the backend and jaxlib's version, so a hit is the same executable. JAX
# writes entries without a lock (its locking needs `filelock` and a size limit): an entry cut short by a killed
# writer is read as an error, which JAX warns about and compiles past. The directory is removed when the session
# ends. A JAX_COMPILATION_CACHE_DIR of your own is used as it is, with JAX's own thresholds.
_CACHE_OWNED = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _CACHE_OWNED:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="genjax-test-jax-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # the tests' programs compile in well under 1 s
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  # removed when this process exits (xdist workers that inherited the directory leave it to the process that made it)
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)

import jax  # noqa: E402
import pytest  # noqa: E402

from genjax import config as cfg  # noqa: E402


@pytest.fixture
def backend_precision():
  """The backend's default matmul precision (`matmul_precision: default` as a user's run has it) for one test."""
  before = jax.config.jax_default_matmul_precision
  jax.config.update("jax_default_matmul_precision", None)
  yield
  jax.config.update("jax_default_matmul_precision", before)


@pytest.fixture
def untrained_feature_net(monkeypatch):
  """An untrained classifier as the evaluation's feature network: FID and the rest are computed all the same,
  without minutes of training; the reference features are computed afresh in it, and forgotten after."""
  from genjax import classifier
  from genjax.eval import generator
  c = classifier.get_config("mnist")
  state = classifier.init_state(jax.random.PRNGKey(0), c, {"image": jax.numpy.zeros((2, 28, 28, 1)),
                                                           "label": jax.numpy.zeros((2,), jax.numpy.int32)})
  monkeypatch.setattr(generator, "feature_network", lambda dataset: (state, {"name": "untrained CNN"}))
  generator.reference_features.cache_clear()
  yield state
  generator.reference_features.cache_clear()


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

