"""Orbax checkpoints: exact round trip; corrupt or mismatched checkpoints fail with a clear message."""

import pathlib

import chex
import jax
import pytest
from conftest import arrays

from genjax import checkpoint
from genjax import config as cfg
from genjax.errors import UserError
from genjax.models import MODELS


def _state(name, **model):
  c = cfg.model_config(name)
  for k, v in model.items():
    c.model[k] = v
  batch = {"image": jax.numpy.zeros((4, 28, 28, 1)), "label": jax.numpy.zeros((4,), jax.numpy.int32)}
  return MODELS[name].init_state(jax.random.PRNGKey(0), c, batch), c


@pytest.mark.parametrize("name", sorted(MODELS))
def test_round_trip_is_exact(tmp_path, name):
  state, c = _state(name)
  batch = {"image": jax.numpy.ones((4, 28, 28, 1)) * 0.5, "label": jax.numpy.arange(4, dtype=jax.numpy.int32)}
  state, _ = jax.jit(MODELS[name].train_step)(state, batch, jax.random.PRNGKey(1))
  ck = checkpoint.Checkpoints(tmp_path / "ck")
  ck.save(1, state)
  ck.wait()
  assert ck.latest_step() == 1
  fresh, _ = _state(name)
  restored = ck.restore(fresh)
  chex.assert_trees_all_equal(arrays(restored), arrays(state))
  assert type(restored) is type(state)
  ck.close()


def test_mismatched_model_is_a_user_error(tmp_path):
  state, _ = _state("vae")
  ck = checkpoint.Checkpoints(tmp_path / "ck")
  ck.save(5, state)
  ck.wait()
  other, _ = _state("vae", latent_dim=8)
  # Caught from the saved metadata, before Orbax starts reading arrays (reads it would abandon half done), by a
  # manager opened afresh as `make eval` or a resumed run opens it.
  ck.close()
  ck = checkpoint.Checkpoints(tmp_path / "ck")
  ck.manager.restore = lambda *a, **k: pytest.fail("read the arrays of a checkpoint whose metadata does not match")
  with pytest.raises(UserError, match=r"does not match this model \(9 arrays differ, e.g. \['params'\]\['decoder'\]"
                                      r"\['project'\]\['kernel'\]: \(16, 3136\) float32 saved, \(8, 3136\)"):
    ck.restore(other)
  gan, _ = _state("gan")
  with pytest.raises(UserError, match="corrupt or does not match this model .*arrays of the model missing"):
    ck.restore(gan)
  assert (tmp_path / "ck" / "5").is_dir()  # left untouched


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
  state, _ = _state("ae")
  ck = checkpoint.Checkpoints(tmp_path / "ck")
  ck.save(3, state)
  ck.wait()
  for f in pathlib.Path(tmp_path / "ck" / "3").rglob("*"):
    if f.is_file() and f.stat().st_size > 0 and "METADATA" not in f.name:
      f.write_bytes(b"\0garbage" * 8)
  with pytest.raises(UserError, match="corrupt or does not match"):
    checkpoint.Checkpoints(tmp_path / "ck").restore(state)
