"""Every registered model: shapes, a finite step that moves the parameters, determinism, vmap and jit."""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import config as cfg
from genjax import kernels, xla
from genjax.models import MODELS
from genjax.train import make_chunk

B = 8


def _setup(name):
  config = cfg.model_config(name)
  family = MODELS[name]
  x = jax.random.uniform(jax.random.PRNGKey(0), (B, 28, 28, 1))
  batch = {"image": x, "label": jnp.arange(B, dtype=jnp.int32) % 10}
  state = family.init_state(jax.random.PRNGKey(1), config, batch)
  step = jax.jit(functools.partial(family.train_step, **config.step))
  return family, config, batch, state, step


@pytest.mark.parametrize("name", sorted(MODELS))
def test_step_is_finite_moves_params_and_is_deterministic(name):
  family, _, batch, state, step = _setup(name)
  rng = jax.random.PRNGKey(2)
  new, metrics = step(state, batch, rng)
  assert metrics and all(np.isfinite(v) and np.shape(v) == () for v in jax.device_get(metrics).values())
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, new)
  assert any(jax.tree.leaves(changed)), "no parameter changed"
  assert int(new.step) == int(state.step) + 1
  again, metrics2 = step(state, batch, rng)
  chex.assert_trees_all_equal(new, again)
  chex.assert_trees_all_equal(metrics, metrics2)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_eval_step_is_per_example(name):
  family, _, batch, state, _ = _setup(name)
  per = jax.jit(family.eval_step)(state, batch, jax.random.PRNGKey(3))
  assert per
  for k, v in per.items():
    chex.assert_shape(v, (B,))
    assert np.all(np.isfinite(v)), k


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pictures_have_image_shape_and_range(name):
  family, _, batch, state, _ = _setup(name)
  outs = []
  if family.sample is not None:
    outs.append(jax.jit(family.sample, static_argnums=2)(state, jax.random.PRNGKey(4), 5))
  if family.reconstruct is not None:
    outs.append(jax.jit(family.reconstruct)(state, batch["image"][:5]))
  assert outs, f"{name} has neither sample nor reconstruct"
  for out in outs:
    chex.assert_shape(out, (5, 28, 28, 1))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


# These share their step code with models kept in `make test` (gan and gan_mlp: gans.train_step; ae_dense, vae_dense:
# the AE and VAE steps) and each takes 25-35 s to compile twice on 2 cores, so they run with `make test-slow`.
VMAP_SLOW = ("ae", "vae", "gan", "cgan", "wgan", "wgan_gp")  # gan_mlp's case runs the same adversarial step


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in VMAP_SLOW else n
                                  for n in sorted(MODELS)])
def test_train_step_vmaps_over_seeds(name):
  # Population training: stack two independently initialized states and step both in one program.
  family, config, batch, _, _ = _setup(name)
  states = jax.vmap(lambda k: family.init_state(k, config, batch))(jax.random.split(jax.random.PRNGKey(5), 2))
  step = functools.partial(family.train_step, **config.step)
  new, metrics = jax.jit(jax.vmap(step, in_axes=(0, None, None)))(states, batch, jax.random.PRNGKey(6))
  for v in jax.tree.leaves(metrics):
    chex.assert_shape(v, (2,))
  one, _ = jax.jit(step)(jax.tree.map(lambda a: a[0], states), batch, jax.random.PRNGKey(6))
  # Adam's first step moves each weight by about +-lr, so a gradient within rounding of zero may flip sign between
  # the batched and unbatched programs (one weight in 521,084 of iwae2's did): such a weight is off by up to 2 lr.
  # A wrong vmap would be off by O(lr) everywhere, so at most one weight in 100,000 may be off by more than lr / 4.
  lr = config.optim.lr
  got, want = (np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])
               for t in (jax.tree.map(lambda a: a[0], new), one))
  off = np.abs(got - want) > lr / 4 + 1e-5 * np.abs(want)
  assert off.sum() <= got.size // 100_000, f"{off.sum()} of {got.size} values differ by more than lr / 4"
  assert np.all(np.abs(got - want)[off] <= 2.0 * lr * 1.01 + 1e-5 * np.abs(want)[off])


def _conv_dim_labels(hlo_text):
  return re.findall(r"convolution\([^)]*\), window=\{[^}]*\}, dim_labels=([^,]+),", hlo_text)


@pytest.mark.skipif(not kernels.enabled(), reason="XLA:CPU's canonical (Eigen) convs")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_scanned_steps_have_canonical_convs_only(name):
  """Under lax.scan every conv of a model's training step is in the form XLA:CPU runs with Eigen (b01f_01io->b01f):
  its ConvCanonicalization pass rewrites JAX's gradient convs only outside loops, and inside one they ran as a naive
  loop, about 20x slower. The conv models are those whose lowered step has a convolution (ae, vae, gan so far)."""
  family, config, batch, state, _ = _setup(name)
  step = functools.partial(family.train_step, **config.step)
  chunk = jax.jit(make_chunk(step, 2), compiler_options=xla.compiler_options(xla.ynn_of(config)))  # as make train
  images = (batch["image"] * 255).astype(jnp.uint8)
  idx = jnp.arange(2 * B, dtype=jnp.int32).reshape(2, B) % B
  lowered = chunk.lower(state, images, batch["label"], idx, jax.random.PRNGKey(2))
  if "convolution" not in lowered.as_text():
    return  # a dense model: nothing to compile
  hlo = lowered.compile().as_text()
  assert "while" in hlo
  labels = _conv_dim_labels(hlo)
  assert labels and set(labels) == {"b01f_01io->b01f"}, labels


def test_vae_kl_weight_and_noise():
  family, config, batch, state, _ = _setup("vae")
  rng = jax.random.PRNGKey(7)
  step = jax.jit(family.train_step, static_argnames="beta")  # eager conv steps take ~20 s on CPU
  _, m0 = step(state, batch, rng, beta=0.0)
  _, m1 = step(state, batch, rng, beta=1.0)
  np.testing.assert_allclose(m0["loss"], m0["recon"], rtol=1e-6)
  np.testing.assert_allclose(m1["loss"], m1["recon"] + m1["kl"], rtol=1e-6)
  np.testing.assert_allclose(m1["neg_elbo"], m1["recon"] + m1["kl"], rtol=1e-6)
  assert float(m1["kl"]) >= 0.0
  # the step folds its key with the step count: consecutive steps draw different noise
  per_a = family.eval_step(state, batch, jax.random.PRNGKey(8))
  per_b = family.eval_step(state, batch, jax.random.PRNGKey(9))
  assert not np.allclose(per_a["recon"], per_b["recon"])


def test_gan_step_updates_discriminator_and_generator():
  family, _, batch, state, step = _setup("gan")
  new, _ = step(state, batch, jax.random.PRNGKey(10))
  for half in ("gen", "disc"):
    before, after = getattr(state, half), getattr(new, half)
    assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before.params, after.params)))
    assert int(after.step) == 1
  # BatchNorm running statistics move in the generator only
  assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.gen.batch_stats,
                                          new.gen.batch_stats)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_scanned_step_lowers_for_gpus_and_tpus_without_the_cpu_kernels(name):
  """Traced as for an accelerator (kernels.platform), every model's scanned float32 step lowers for CUDA and for
  TPUs from this CPU, with none of the CPU kernels in it; traced for the CPU, the conv models have them (so the
  check can fail). bfloat16, a population and 2 devices: test_parallel.py (make test-distributed)."""
  import lowering
  found, texts = lowering.lower(name)
  assert not found, f"CPU kernels {found} in the accelerator program of {name}"
  for platform, text in texts.items():
    assert text.startswith("module @jit_") and "stablehlo.while" in text, (name, platform)
  if name in ("ae", "vae", "gan") and kernels.enabled():
    c = cfg.model_config(name)
    family, _, batch, state, _ = _setup(name)
    jaxpr = str(jax.make_jaxpr(functools.partial(family.train_step, **c.step))(state, batch, jax.random.PRNGKey(0)))
    assert set(lowering.CPU_KERNELS) & set(re.findall(r"custom_vjp_call\[\s*name=(\w+)", jaxpr))
