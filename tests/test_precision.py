"""Mixed precision (config.dtype=bfloat16): every model's step multiplies in bfloat16, keeps float32 parameters,
gradients and optimizer state, and its losses track the float32 run."""

import functools
import json

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

from genjax import config as cfg
from genjax import train
from genjax.errors import UserError
from genjax.models import MODELS
from genjax.state import compute_in


def _eqns(jaxpr):
  """Every equation of `jaxpr` and of the jaxprs inside it (jit, scan, custom_vjp, ...)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          yield from _eqns(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          yield from _eqns(sub)


def _matmuls(name, dtype):
  """The dot_general and conv equations of the traced training step, with the step's output info."""
  config = cfg.model_config(name)
  family = MODELS[name]
  batch = {"image": jnp.full((8, 28, 28, 1), 0.5), "label": jnp.arange(8, dtype=jnp.int32)}
  # Abstract: tracing needs shapes only, and running the conv models' initializers costs seconds each.
  state = compute_in(jax.eval_shape(functools.partial(family.init_state, config=config, example_batch=batch),
                                    jax.random.PRNGKey(1)), dtype)
  traced = jax.jit(functools.partial(family.train_step, **config.step)).trace(state, batch, jax.random.PRNGKey(2))
  eqns = [e for e in _eqns(traced.jaxpr.jaxpr) if e.primitive.name in ("dot_general", "conv_general_dilated")]
  return state, eqns, traced.out_info


def _matmul_dtypes(name, dtype):
  """The operand dtypes of every dot_general and conv in the traced training step."""
  state, eqns, out_info = _matmuls(name, dtype)
  return state, {jnp.dtype(v.aval.dtype).name for e in eqns for v in e.invars}, out_info


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bfloat16_step_multiplies_in_bfloat16_and_keeps_float32_state(name):
  if name == "gmmn_ae":  # needs a trained autoencoder's run directory; its networks are gmmn's and ae_dense's
    pytest.skip("builds from another run")
  _, f32_ops, _ = _matmul_dtypes(name, "float32")
  assert f32_ops == {"float32"}
  state, ops, (new_state, metrics) = _matmul_dtypes(name, "bfloat16")
  assert "bfloat16" in ops, f"{name}: no matmul or conv in bfloat16 ({ops})"
  # Those left in float32 are the gradients' own reductions of float32 losses, if any: never most of them.
  floats = {str(a.dtype) for a in jax.tree.leaves(new_state) if jnp.issubdtype(a.dtype, jnp.floating)}
  assert floats == {"float32"}, floats
  assert all(m.dtype == jnp.float32 for m in jax.tree.leaves(metrics))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bfloat16_dense_layers_accumulate_in_float32(name):
  """Every Dense layer's matmuls, forward and backward, take bfloat16 operands and accumulate in float32
  (nets.Dense): XLA:CPU runs those at up to twice the float32 rate here, and ones with a bfloat16 result at float32's
  rate or below. A Dense built as plain nn.Dense fails this."""
  if name == "gmmn_ae":
    pytest.skip("builds from another run")
  _, eqns, _ = _matmuls(name, "bfloat16")
  dots = [e for e in eqns if e.primitive.name == "dot_general"
          and all(v.aval.dtype == jnp.bfloat16 for v in e.invars)]
  assert dots, f"{name}: no bfloat16 matmul"
  rounded = [str(e.outvars[0].aval) for e in dots if e.params["preferred_element_type"] != jnp.float32]
  assert not rounded, f"{name}: bfloat16 matmuls without float32 accumulation: {rounded}"
  _, f32_eqns, _ = _matmuls(name, "float32")  # float32 models stay plain lax.dot_general
  assert all(e.params["preferred_element_type"] in (None, jnp.float32) for e in f32_eqns)


@pytest.mark.parametrize("name,tolerance", [("vae_dense", 0.01),
                                            pytest.param("gan", 0.03, marks=pytest.mark.slow)])  # BatchNorm
def test_bfloat16_losses_track_float32(tmp_path, name, tolerance):
  """20 steps from the same initialization: each logged loss (a mean over 2 steps) within `tolerance`, relative. The
  GAN trains at DCGAN's learning rate 2e-4: at its default's 2e-3 the game itself amplifies any difference of
  rounding within a few steps (seen here: 4% apart by step 12, 230% by step 14), which would test the game, not
  the arithmetic."""
  curves = {}
  for dtype in ("float32", "bfloat16"):
    c = small_config(name, steps=20, log_every=2, sample_every=20, checkpoint_every=20)
    c.dtype = dtype
    if name == "gan":
      c.optim.lr = 2e-4
    train.train(c, tmp_path / dtype, quiet=True)
    records = [json.loads(line) for line in (tmp_path / dtype / "metrics.jsonl").read_text().splitlines()]
    curves[dtype] = np.array([r["g_loss" if name == "gan" else "loss"] for r in records])
  f32, bf16 = curves["float32"], curves["bfloat16"]
  assert len(f32) == 10 and not np.array_equal(f32, bf16)  # a run that computed in float32 would match exactly
  assert np.max(np.abs(bf16 - f32) / np.abs(f32)) < tolerance


def test_unknown_dtype_is_one_line(tmp_path):
  c = small_config("ae_dense")
  c.dtype = "float8"
  with pytest.raises(UserError, match="dtype must be float32 or bfloat16"):
    train.train(c, tmp_path, quiet=True)
