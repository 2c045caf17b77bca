"""Every registered model: shapes, a finite step that moves the parameters, determinism, vmap and jit."""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import config as cfg
from genjax import xla
from genjax.models import MODELS, nets
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
  if hasattr(family, "sample"):
    outs.append(jax.jit(family.sample, static_argnums=2)(state, jax.random.PRNGKey(4), 5))
  if hasattr(family, "reconstruct"):
    outs.append(jax.jit(family.reconstruct)(state, batch["image"][:5]))
  assert outs, f"{name} has neither sample nor reconstruct"
  for out in outs:
    chex.assert_shape(out, (5, 28, 28, 1))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


# These share their step code with models kept in `make test` (gan and gan_mlp: gans.train_step; ae_dense, vae_dense:
# the AE and VAE steps) and each takes 25-35 s to compile twice on 2 cores, so they run with `make test-slow`.
VMAP_SLOW = ("ae", "vae", "cgan", "wgan", "wgan_gp")


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
  # the batched and unbatched programs; a wrong vmap would be off by O(lr) everywhere.
  chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], new), one, rtol=1e-5, atol=config.optim.lr / 4)


@pytest.mark.parametrize("kind", nets.UPSAMPLE)
def test_upsample_doubles_size(kind):
  m = nets.Upsample2x(3, kind)
  x = jnp.ones((2, 7, 7, 5))
  y = m.apply(m.init(jax.random.PRNGKey(0), x), x)
  chex.assert_shape(y, (2, 14, 14, 3))


@pytest.mark.parametrize("features", [1, 3])
def test_subpixel_upsample_is_linen_conv_and_depth_to_space(features):
  """The subpixel layer (its conv `taps` on CPU for 4 features, XLA's otherwise) has the parameter tree and
  initialization of depth_to_space(nn.Conv(x)), the layer as it was written before, and computes it, gradients
  included."""
  import flax.linen as nn

  class Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nets.depth_to_space(nn.Conv(4 * features, (3, 3), padding="SAME")(x))

  x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 5))
  m, ref = nets.Upsample2x(features, "subpixel"), Linen()
  variables = m.init(jax.random.PRNGKey(1), x)
  chex.assert_trees_all_equal(variables, ref.init(jax.random.PRNGKey(1), x))
  loss = lambda v: jnp.sum(jnp.sin(m.apply(v, x)))  # noqa: E731
  loss_ref = lambda v: jnp.sum(jnp.sin(ref.apply(v, x)))  # noqa: E731
  np.testing.assert_allclose(loss(variables), loss_ref(variables), rtol=1e-5)
  chex.assert_trees_all_close(jax.grad(loss)(variables), jax.grad(loss_ref)(variables), rtol=1e-4, atol=1e-5)
  uses_conv = "conv_general_dilated" in str(jax.make_jaxpr(m.apply)(variables, x))
  assert uses_conv == (jax.default_backend() != "cpu" or 4 * features > nets.TAPS_MAX_FEATURES)


@pytest.mark.parametrize("features,x_shape", [(6, (2, 7, 5, 8)), (1, (2, 14, 14, 16)), (3, (1, 4, 6, 5))])
def test_transpose_upsample_is_linen_conv_transpose(features, x_shape):
  """The transposed-conv layer (phases of a 2x2 conv on CPU, its taps form for 4 * features <= TAPS_MAX_FEATURES)
  has nn.ConvTranspose's parameter tree and initialization under the name it had before, and computes
  nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME"), both gradients included; on CPU no pass is
  XLA's input-dilated conv, whose weight gradient ran 17-20x slower than its forward pass."""
  import flax.linen as nn

  class Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")(x)

  x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
  m, ref = nets.Upsample2x(features, "transpose"), Linen()
  variables = m.init(jax.random.PRNGKey(1), x)
  chex.assert_trees_all_equal(variables, ref.init(jax.random.PRNGKey(1), x))
  variables = jax.tree.map(lambda v: v + 0.1, variables)  # a bias that is not zero
  loss = lambda v, x: jnp.sum(jnp.sin(m.apply(v, x)))  # noqa: E731
  loss_ref = lambda v, x: jnp.sum(jnp.sin(ref.apply(v, x)))  # noqa: E731
  np.testing.assert_allclose(jax.jit(loss)(variables, x), loss_ref(variables, x), rtol=1e-5)
  for got, want in zip(jax.jit(jax.grad(loss, (0, 1)))(variables, x), jax.grad(loss_ref, (0, 1))(variables, x)):
    chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-4)
  jaxpr = str(jax.make_jaxpr(jax.grad(loss, (0, 1)))(variables, x))
  assert ("lhs_dilation=(2, 2)" in jaxpr) == (jax.default_backend() != "cpu")


def test_depth_to_space_places_channel_groups():
  x = jnp.arange(8.0).reshape(1, 1, 2, 4)  # two pixels, four channel groups of one channel
  y = nets.depth_to_space(x)
  np.testing.assert_array_equal(y[0, :, :, 0], [[0, 1, 4, 5], [2, 3, 6, 7]])


def test_space_to_depth_inverts_depth_to_space():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4, 3))
  np.testing.assert_array_equal(nets.depth_to_space(nets.space_to_depth(x)), x)


@pytest.mark.parametrize("c,f,size", [(1, 32, 28), (32, 64, 14), (8, 4, 6)])
def test_conv_4x4_stride2_matches_xla_in_value_and_both_gradients(c, f, size):
  """The encoders' CPU conv (space_to_depth forward for few channels and input gradient, XLA's weight gradient)
  is the SAME 4x4 stride-2 conv, in all three passes."""
  _assert_is_xla_conv(nets.conv_4x4_stride2, (3, size, size, c), (4, 4, c, f), (2, 2))


def _assert_is_xla_conv(conv, x_shape, kernel_shape, strides, padding="SAME"):
  """conv(x, kernel) equals XLA's conv with `strides` and `padding` in value, input gradient and weight gradient."""
  kx, kk, kd = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, x_shape)
  kernel = jax.random.normal(kk, kernel_shape) / (kernel_shape[2] ** 0.5 * kernel_shape[0])
  ref = lambda x, k: jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=nets.DN)  # noqa: E731
  y_ref, vjp_ref = jax.vjp(ref, x, kernel)
  dy = jax.random.normal(kd, y_ref.shape)
  y, vjp = jax.jit(lambda x, k: jax.vjp(conv, x, k))(x, kernel)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for got, want in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("x_shape,kernel,strides,padding", [
    ((3, 14, 14, 5), (4, 4), (2, 2), "SAME"), ((2, 15, 15, 2), (4, 4), (2, 2), "SAME"),
    ((2, 7, 6, 3), (3, 3), (1, 1), "SAME"), ((2, 8, 8, 3), (2, 2), (1, 1), ((1, 0), (0, 1))),
    ((2, 9, 8, 3), (3, 2), (2, 3), "VALID"), ((2, 11, 10, 2), (5, 3), (3, 2), "VALID")])  # VALID: rows left over
def test_canonical_conv_matches_xla_in_value_and_both_gradients(x_shape, kernel, strides, padding):
  """The conv whose gradients are canonical NHWC / HWIO convs is XLA's conv in all three passes, for strides 1 to 3,
  SAME, VALID (whose weight gradient pads negatively where the stride leaves rows unread) and uneven padding."""
  pads = nets._explicit_pads(x_shape[1:3], kernel, strides, padding)
  conv = lambda x, k: nets.canonical_conv(x, k, strides, pads)  # noqa: E731
  _assert_is_xla_conv(conv, x_shape, (*kernel, x_shape[-1], 4), strides, padding)


def _conv_dim_labels(hlo_text):
  return re.findall(r"convolution\([^)]*\), window=\{[^}]*\}, dim_labels=([^,]+),", hlo_text)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's canonical (Eigen) convs")
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


@pytest.mark.parametrize("c,f,size,kernel", [(32, 4, (14, 14), (3, 3)), (3, 2, (5, 7), (3, 3)), (2, 3, (6, 5), (4, 2)),
                                              (4, 1, (4, 4), (1, 1))])
def test_conv_taps_matches_xla_in_value_and_both_gradients(c, f, size, kernel):
  """The subpixel layers' CPU conv (one matmul to every tap, then shifted sums; shifted output gradients in the
  backward pass) is XLA's SAME stride-1 conv in all three passes, for odd, even (uneven padding) and 1x1 kernels."""
  _assert_is_xla_conv(nets.conv_taps, (3, *size, c), (*kernel, c, f), (1, 1))


@pytest.mark.parametrize("x_shape", [(8, 20), (2, 3, 20)])
def test_dense_accumulates_bfloat16_in_float32_and_leaves_float32_alone(x_shape):
  """nets.Dense is nn.Dense (same parameters; float32 outputs and gradients bit for bit); with bfloat16 operands
  each matmul, forward and both gradients, is the float32-accumulated product rounded to bfloat16 once."""
  import flax.linen as nn
  kx, kd = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, x_shape)
  ours, ref = nets.Dense(7), nn.Dense(7)
  variables = ours.init(jax.random.PRNGKey(1), x)
  chex.assert_trees_all_equal(variables, ref.init(jax.random.PRNGKey(1), x))
  dy = jax.random.normal(kd, (*x_shape[:-1], 7))

  def output_and_gradients(m):
    y, vjp = jax.vjp(lambda v, x: m.apply(v, x), variables, x)
    return y, vjp(dy)
  chex.assert_trees_all_equal(output_and_gradients(ours), output_and_gradients(ref))

  bf, f32 = jnp.bfloat16, jnp.float32
  xb, kb, dyb = x.astype(bf), variables["params"]["kernel"].astype(bf), dy.astype(bf)
  y, vjp = jax.vjp(lambda x, k: nets.dot_general(x, k, (((x.ndim - 1,), (0,)), ((), ()))), xb, kb)
  dx, dk = vjp(dyb)
  assert y.dtype == dx.dtype == dk.dtype == bf
  xb2, dyb2 = xb.reshape(-1, 20), dyb.reshape(-1, 7)
  for got, a, b in ((y, xb2, kb), (dx, dyb2, kb.T), (dk, xb2.T, dyb2)):
    got = got.reshape(-1, got.shape[-1])
    # Rounded once from a float32 sum: within half a bfloat16 ulp (2^-8 relative) of the exact product, plus the
    # float32 sum's own error; and exactly the float32-accumulated product rounded to bfloat16.
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(a, np.float64) @ np.asarray(b, np.float64),
                               rtol=2 ** -8, atol=1e-6)
    np.testing.assert_array_equal(got, jax.lax.dot(a, b, preferred_element_type=f32).astype(bf))
  # Calls that are not a Dense contraction, or ask for a result type, are lax.dot_general's.
  a, b = jnp.ones((3, 4), bf), jnp.ones((5, 4), bf)
  dims = (((1,), (1,)), ((), ()))
  assert nets.dot_general(a, b, dims).dtype == bf
  assert "preferred_element_type=float32" not in str(jax.make_jaxpr(nets.dot_general, static_argnums=2)(a, b, dims))
  asks = jax.make_jaxpr(lambda x, k: nets.dot_general(x, k, (((1,), (0,)), ((), ())), preferred_element_type=bf))
  assert "preferred_element_type=float32" not in str(asks(xb2, kb))


def test_conv_impls_agree_and_share_parameters():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 14, 14, 3))
  outs = {}
  for impl in ("lax", "patches", "s2d", "auto"):
    m = nets.Conv(5, (4, 4), strides=(2, 2), impl=impl)
    variables = m.init(jax.random.PRNGKey(1), x)
    outs[impl] = m.apply(variables, x)
    assert jax.tree.map(jnp.shape, variables) == {"params": {"kernel": (4, 4, 3, 5), "bias": (5,)}}
  for impl in ("patches", "s2d", "auto"):
    np.testing.assert_allclose(outs[impl], outs["lax"], rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="even-sized"):
    m = nets.Conv(5, (4, 4), strides=(2, 2), impl="s2d")
    m.init(jax.random.PRNGKey(1), jnp.ones((1, 7, 7, 3)))
  with pytest.raises(ValueError, match="stride-1"):
    nets.Conv(5, (4, 4), strides=(2, 2), impl="taps").init(jax.random.PRNGKey(1), x)
  # Stride 1: the auto choice on CPU for a few features is `taps`.
  stride1 = {impl: nets.Conv(3, (3, 3), impl=impl) for impl in ("lax", "patches", "taps", "auto")}
  variables = stride1["lax"].init(jax.random.PRNGKey(1), x)
  for impl, m in stride1.items():
    assert jax.tree.map(jnp.shape, m.init(jax.random.PRNGKey(1), x)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(m.apply(variables, x), stride1["lax"].apply(variables, x), rtol=1e-5, atol=1e-5)
  auto_uses_conv = "conv_general_dilated" in str(jax.make_jaxpr(stride1["auto"].apply)(variables, x))
  assert auto_uses_conv == (jax.default_backend() != "cpu")


@pytest.mark.parametrize("shape", [(16, 24), (4, 5, 5, 3)])
def test_batch_norm_is_flax_batch_norm(shape):
  """nets.BatchNorm (closed-form backward, sums as matmuls on CPU) against nn.BatchNorm: the same variables, outputs,
  running statistics and gradients, in training and evaluation mode."""
  import flax.linen as nn
  kx, kd = jax.random.split(jax.random.PRNGKey(0))
  x = 3.0 + 2.0 * jax.random.normal(kx, shape)
  dy = jax.random.normal(kd, shape)
  ours, ref = nets.BatchNorm(momentum=0.9), nn.BatchNorm(use_running_average=False, momentum=0.9)
  variables = ours.init(jax.random.PRNGKey(1), x)
  assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, ref.init(jax.random.PRNGKey(1), x))
  variables = {"params": {"scale": 1.0 + jax.random.normal(kd, shape[-1:]), "bias": jnp.arange(shape[-1]) / 7.0},
               "batch_stats": variables["batch_stats"]}

  def run(module, params, x):
    y, upd = module.apply({**variables, "params": params}, x, mutable=["batch_stats"])
    return y, upd["batch_stats"]

  (y, stats), vjp = jax.vjp(lambda p, x: run(ours, p, x), variables["params"], x)
  (y_ref, stats_ref), vjp_ref = jax.vjp(lambda p, x: run(ref, p, x), variables["params"], x)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(stats, stats_ref, rtol=1e-5, atol=1e-5)
  zeros = jax.tree.map(jnp.zeros_like, stats)
  chex.assert_trees_all_close(vjp((dy, zeros)), vjp_ref((dy, zeros)), rtol=1e-4, atol=1e-4)
  evaluated = nets.BatchNorm(use_running_average=True).apply({**variables, "batch_stats": stats}, x)
  np.testing.assert_allclose(evaluated, nn.BatchNorm(use_running_average=True).apply(
      {**variables, "batch_stats": stats}, x), rtol=1e-5, atol=1e-5)


def test_batch_norm_train_gradient_of_its_statistics():
  """batch_norm_train's custom backward also carries cotangents of its mean and var outputs, as autodiff of the
  formula does."""
  x = 1.0 + jax.random.normal(jax.random.PRNGKey(0), (32, 6))
  scale, bias = jnp.linspace(0.5, 2.0, 6), jnp.linspace(-1.0, 1.0, 6)

  def formula(x, scale, bias):
    mean = jnp.mean(x, 0)
    var = jnp.maximum(0.0, jnp.mean(x * x, 0) - mean * mean)
    return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias, mean, var

  cts = tuple(jax.random.normal(jax.random.PRNGKey(i), s) for i, s in enumerate([(32, 6), (6,), (6,)]))
  got = jax.vjp(lambda *a: nets.batch_norm_train(*a, 1e-5), x, scale, bias)[1](cts)
  want = jax.vjp(formula, x, scale, bias)[1](cts)
  chex.assert_trees_all_close(got, want, rtol=1e-4, atol=1e-4)


def test_batch_norm_sums_are_matmuls_on_cpu():
  """On CPU the statistics and the backward pass's sums compile to dots. Compiled with xla_cpu_ynn none,
  nn.BatchNorm's reductions become XLA:CPU's slow reduce-windows."""
  if jax.default_backend() != "cpu":
    pytest.skip("CPU compilation")
  m = nets.BatchNorm()
  x = jnp.ones((128, 7, 7, 64))
  variables = m.init(jax.random.PRNGKey(0), x)
  loss = lambda p, x: jnp.sum(m.apply({**variables, "params": p}, x, mutable=["batch_stats"])[0] ** 2)  # noqa: E731
  lowered = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(variables["params"], x)
  hlo = lowered.compile(xla.compiler_options("none")).as_text()
  assert "reduce-window" not in hlo and " dot(" in hlo


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
