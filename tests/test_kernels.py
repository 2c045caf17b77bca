"""genjax.kernels: each kernel against XLA's own op in value and both gradients, the Flax hooks that pick them, and
the one switch (`kernels.enabled()`) that decides when they are used."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import kernels, xla
from genjax.models import nets


def _not_cpu(monkeypatch):
  """Kernels off, as on a GPU: `enabled()` reads the backend at trace time."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert not kernels.enabled()


def _jaxpr(fn, *args) -> str:
  """fn's jaxpr, traced afresh: make_jaxpr caches traces by function, and `enabled()` is read at trace time."""
  return str(jax.make_jaxpr(lambda *a: fn(*a))(*args))


def test_enabled_is_the_cpu_backend(monkeypatch):
  assert kernels.enabled() == (jax.default_backend() == "cpu")
  _not_cpu(monkeypatch)


# ------------------------------------------------------------------------------------------------------------ convs


def _xla_conv(strides, padding):
  return lambda x, k: jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=kernels.DN)


def _assert_matches(fn, ref, x_shape, kernel_shape):
  """fn(x, kernel) equals ref(x, kernel) in value, input gradient and weight gradient."""
  kx, kk, kd = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(kx, x_shape)
  kernel = jax.random.normal(kk, kernel_shape) / (kernel_shape[2] ** 0.5 * kernel_shape[0])
  y_ref, vjp_ref = jax.vjp(ref, x, kernel)
  dy = jax.random.normal(kd, y_ref.shape)
  y, vjp = jax.jit(lambda x, k: jax.vjp(fn, x, k))(x, kernel)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for got, want in zip(vjp(dy), vjp_ref(dy)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _assert_is_xla_conv(conv, x_shape, kernel_shape, strides, padding="SAME"):
  """conv(x, kernel) equals XLA's conv with `strides` and `padding` in value, input gradient and weight gradient."""
  _assert_matches(conv, _xla_conv(strides, padding), x_shape, kernel_shape)


def test_space_to_depth_inverts_depth_to_space():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 4, 3))
  np.testing.assert_array_equal(nets.depth_to_space(kernels.space_to_depth(x)), x)


@pytest.mark.parametrize("c,f,size", [(1, 32, 28), (32, 64, 14), (8, 4, 6)])
def test_conv_4x4_stride2_matches_xla_in_value_and_both_gradients(c, f, size):
  """The encoders' CPU conv (space_to_depth forward for few channels and input gradient, XLA's weight gradient)
  is the SAME 4x4 stride-2 conv, in all three passes."""
  _assert_is_xla_conv(kernels.conv_4x4_stride2, (3, size, size, c), (4, 4, c, f), (2, 2))


@pytest.mark.parametrize("x_shape,kernel,strides,padding", [
    ((3, 14, 14, 5), (4, 4), (2, 2), "SAME"), ((2, 15, 15, 2), (4, 4), (2, 2), "SAME"),
    ((2, 7, 6, 3), (3, 3), (1, 1), "SAME"), ((2, 8, 8, 3), (2, 2), (1, 1), ((1, 0), (0, 1))),
    ((2, 9, 8, 3), (3, 2), (2, 3), "VALID"), ((2, 11, 10, 2), (5, 3), (3, 2), "VALID")])  # VALID: rows left over
def test_canonical_conv_matches_xla_in_value_and_both_gradients(x_shape, kernel, strides, padding):
  """The conv whose gradients are canonical NHWC / HWIO convs is XLA's conv in all three passes, for strides 1 to 3,
  SAME, VALID (whose weight gradient pads negatively where the stride leaves rows unread) and uneven padding."""
  pads = kernels.explicit_pads(x_shape[1:3], kernel, strides, padding)
  conv = lambda x, k: kernels.canonical_conv(x, k, strides, pads)  # noqa: E731
  _assert_is_xla_conv(conv, x_shape, (*kernel, x_shape[-1], 4), strides, padding)


@pytest.mark.parametrize("c,f,size,kernel", [(32, 4, (14, 14), (3, 3)), (3, 2, (5, 7), (3, 3)), (2, 3, (6, 5), (4, 2)),
                                              (4, 1, (4, 4), (1, 1))])
def test_conv_taps_matches_xla_in_value_and_both_gradients(c, f, size, kernel):
  """The subpixel layers' CPU conv (one matmul to every tap, then shifted sums; shifted output gradients in the
  backward pass) is XLA's SAME stride-1 conv in all three passes, for odd, even (uneven padding) and 1x1 kernels."""
  _assert_is_xla_conv(kernels.conv_taps, (3, *size, c), (*kernel, c, f), (1, 1))


@pytest.mark.parametrize("x_shape,kernel,strides,padding", [
    ((2, 9, 7, 3), (3, 3), (1, 1), "SAME"), ((2, 7, 9, 3), (5, 5), (2, 2), "SAME"),
    ((2, 8, 8, 2), (2, 3), (1, 2), ((1, 0), (2, 1))), ((2, 10, 9, 3), (3, 2), (3, 2), "VALID")])
def test_patches_matmul_matches_xla_in_value_and_both_gradients(x_shape, kernel, strides, padding):
  """patches(x) @ kernel.reshape(kh*kw*C, F), the classifier's and Inception's CPU conv, is XLA's conv in all three
  passes, for SAME (the default, padding=None), explicit and VALID padding."""
  kh, kw = kernel
  pads = None if padding == "SAME" else kernels.explicit_pads(x_shape[1:3], kernel, strides, padding)
  conv = lambda x, k: kernels.patches(x, kernel, strides, pads) @ k.reshape(kh * kw * x.shape[-1], -1)  # noqa: E731
  _assert_is_xla_conv(conv, x_shape, (*kernel, x_shape[-1], 4), strides, padding)


@pytest.mark.parametrize("x_shape,kernel,strides,padding", [
    ((2, 14, 14, 3), (4, 4), (2, 2), "SAME"), ((2, 7, 7, 3), (4, 4), (2, 2), "SAME"),  # s2d; odd size: lax
    ((2, 7, 6, 5), (3, 3), (1, 1), "SAME"), ((2, 7, 6, 5), (3, 3), (1, 1), ((0, 2), (1, 1))),  # taps; patches
    ((2, 8, 8, 3), (3, 3), (2, 2), "VALID")])
@pytest.mark.parametrize("features", [3, 6])
def test_conv_general_dilated_matches_xla_in_value_and_both_gradients(x_shape, kernel, strides, padding, features):
  """nn.Conv's hook, with each form its `auto` picks on CPU (s2d, taps, patches, canonical_conv), is XLA's conv in
  all three passes, called as nn.Conv calls it."""
  dims = jax.lax.conv_dimension_numbers(x_shape, (*kernel, x_shape[-1], features), kernels.DN)

  def conv(x, k):
    return kernels.conv_general_dilated(x, k, strides, padding, lhs_dilation=(1, 1), rhs_dilation=(1, 1),
                                        dimension_numbers=dims, feature_group_count=1, precision=None)
  _assert_is_xla_conv(conv, x_shape, (*kernel, x_shape[-1], features), strides, padding)


def _forms(fn, *args):
  """The forms in genjax.kernels.conv that tracing fn(*args) called, in order."""
  from genjax.kernels import conv
  seen = []
  with pytest.MonkeyPatch.context() as mp:
    for name in ("patches", "conv_taps", "conv_4x4_stride2", "canonical_conv"):
      def spy(*a, _name=name, _f=getattr(conv, name), **kw):  # noqa: B008
        seen.append(_name)
        return _f(*a, **kw)
      mp.setattr(conv, name, spy)
    _jaxpr(fn, *args)
  return seen


@pytest.mark.parametrize("x_shape,kernel,features,strides,padding,form", [
    ((2, 8, 8, 6), (4, 4), 8, (2, 2), "SAME", "conv_4x4_stride2"),
    ((2, 7, 8, 6), (4, 4), 8, (2, 2), "SAME", "canonical_conv"),  # odd height
    ((2, 8, 8, 6), (4, 4), 8, (2, 2), ((1, 2), (1, 2)), "canonical_conv"),  # not SAME
    ((2, 8, 8, 6), (3, 3), 4, (1, 1), "SAME", "conv_taps"),
    ((2, 8, 8, 6), (3, 3), 5, (1, 1), "SAME", "patches"),
    ((2, 8, 8, 6), (3, 3), 4, (1, 1), "VALID", "patches"),  # taps is SAME only
    ((2, 8, 8, 6), (3, 3), 4, (2, 2), "SAME", "canonical_conv")])
def test_conv_general_dilated_picks_the_cpu_form_where_kernels_are_enabled(monkeypatch, x_shape, kernel, features,
                                                                          strides, padding, form):
  """`auto` where kernels are enabled: s2d (conv_4x4_stride2) for the SAME 4x4 stride-2 conv of an even-sized image,
  taps for a SAME stride-1 conv to at most TAPS_MAX_FEATURES features, patches for other stride-1 convs,
  canonical_conv otherwise; where they are not, lax's own conv, and no form of genjax's."""
  x, k = jnp.ones(x_shape), jnp.ones((*kernel, x_shape[-1], features))
  fn = lambda x, k: kernels.conv_general_dilated(x, k, strides, padding, dimension_numbers=kernels.DN)  # noqa: E731
  assert _forms(fn, x, k)[:1] == ([form] if kernels.enabled() else [])  # the form, then those it calls
  _not_cpu(monkeypatch)
  assert _forms(fn, x, k) == []
  assert _jaxpr(fn, x, k).count("conv_general_dilated") == 1


def test_conv_general_dilated_leaves_other_convs_to_lax():
  """A conv that is not 2-D NHWC / HWIO without dilations, groups, precision or result type is lax's own under
  `auto` and `lax`; the forms asked for by name refuse it, and an unknown impl is an error."""
  x, k = jnp.ones((2, 8, 8, 6)), jnp.ones((3, 3, 6, 4))
  dn, pads = kernels.DN, ((1, 1), (1, 1))  # lax takes no string padding with lhs_dilation
  calls = [dict(rhs_dilation=(2, 2), dimension_numbers=dn), dict(lhs_dilation=(2, 1), dimension_numbers=dn),
           dict(feature_group_count=2, dimension_numbers=dn), dict(precision=jax.lax.Precision.HIGHEST,
                                                                   dimension_numbers=dn),
           dict(dimension_numbers=("NHWC", "HWIO", "NCHW"))]
  for kw in calls:
    kk = k[:, :, :3] if kw.get("feature_group_count") else k
    for impl in ("auto", "lax"):
      fn = lambda x, k: kernels.conv_general_dilated(x, k, (1, 1), pads, impl=impl, **kw)  # noqa: B023, E731
      assert _forms(fn, x, kk) == [], kw
      np.testing.assert_array_equal(fn(x, kk), jax.lax.conv_general_dilated(x, kk, (1, 1), pads, **kw))
    with pytest.raises(ValueError, match="2-D NHWC"):
      kernels.conv_general_dilated(x, kk, (1, 1), pads, impl="taps", **kw)
  with pytest.raises(ValueError, match="unknown conv impl"):
    kernels.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn, impl="fft")
  with pytest.raises(ValueError, match="unknown conv impl"):
    nets.Conv(4, impl="fft")


@pytest.mark.parametrize("kernel,strides,size", [((3, 3), (1, 1), (9, 7)), ((4, 4), (2, 2), (28, 28)),
                                                 ((5, 5), (2, 2), (7, 9)), ((3, 3), (2, 2), (8, 8))])
def test_conv_implementations_match_linen_conv_and_share_its_parameters(kernel, strides, size):
  x = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 3))
  ref = nn.Conv(5, kernel, strides, padding="SAME")
  variables = ref.init(jax.random.PRNGKey(1), x)
  want = ref.apply(variables, x)
  grad_ref = jax.grad(lambda v: jnp.sum(ref.apply(v, x) ** 2))(variables)
  for impl in ("patches", "lax"):
    conv = nets.Conv(5, kernel, strides, impl=impl)
    own = conv.init(jax.random.PRNGKey(1), x)
    assert jax.tree.all(jax.tree.map(lambda a, b: a.shape == b.shape and bool(jnp.all(a == b)), own, variables))
    np.testing.assert_allclose(conv.apply(variables, x), want, atol=1e-5)
    grad = jax.grad(lambda v, conv=conv: jnp.sum(conv.apply(v, x) ** 2))(variables)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), grad, grad_ref)


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
  for m in stride1.values():
    assert jax.tree.map(jnp.shape, m.init(jax.random.PRNGKey(1), x)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(m.apply(variables, x), stride1["lax"].apply(variables, x), rtol=1e-5, atol=1e-5)
  auto_uses_conv = "conv_general_dilated" in str(jax.make_jaxpr(stride1["auto"].apply)(variables, x))
  assert auto_uses_conv == (not kernels.enabled())


def test_conv_is_linen_conv_and_off_cpu_computes_as_it(monkeypatch):
  """nets.Conv is an nn.Conv (its parameter tree, names and initialization); with kernels off it computes as nn.Conv
  bit for bit, forward and both gradients (its promote_dtype broadcasts the bias where nn.Conv reshapes it: the
  same values)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 14, 14, 3))
  m, ref = nets.Conv(5, (4, 4), strides=(2, 2)), nn.Conv(5, (4, 4), strides=(2, 2))
  assert isinstance(m, nn.Conv) and nets.Conv(5) == nets.Conv(5)
  variables = m.init(jax.random.PRNGKey(1), x)
  chex.assert_trees_all_equal(variables, ref.init(jax.random.PRNGKey(1), x))
  _not_cpu(monkeypatch)
  loss = lambda mod: lambda v, x: jnp.sum(jnp.sin(mod.apply(v, x)))  # noqa: E731
  chex.assert_trees_all_equal(jax.value_and_grad(loss(m), (0, 1))(variables, x),
                              jax.value_and_grad(loss(ref), (0, 1))(variables, x))


@pytest.mark.parametrize("c,f,size", [(5, 6, (7, 5)), (16, 1, (14, 14)), (5, 3, (4, 6)), (8, 64, (7, 7))])
def test_conv_transpose_4x4_s2_matches_xla_in_value_and_both_gradients(c, f, size):
  """nn.ConvTranspose's SAME 4x4 stride-2 transposed conv, as the CPU computes it (phases of one 2x2 conv, its taps
  form for 4F <= TAPS_MAX_FEATURES; gradients those of the 4x4 stride-2 conv), is lax.conv_transpose in all three
  passes."""
  ref = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=kernels.DN)  # noqa: E731
  _assert_matches(kernels.conv_transpose_4x4_s2, ref, (3, *size, c), (4, 4, c, f))


def test_conv_transpose_picks_the_kernel_on_cpu_only(monkeypatch):
  x, k = jnp.ones((2, 7, 7, 4)), jnp.ones((4, 4, 4, 6))
  fn = lambda x, k: kernels.conv_transpose(x, k, (2, 2), "SAME")  # noqa: E731
  assert ("custom_vjp_call" in _jaxpr(fn, x, k)) == kernels.enabled()
  other = lambda x, k: kernels.conv_transpose(x, k, (2, 2), "VALID")  # noqa: E731
  assert "custom_vjp_call" not in _jaxpr(other, x, k)
  _not_cpu(monkeypatch)
  assert "custom_vjp_call" not in _jaxpr(fn, x, k)
  np.testing.assert_array_equal(fn(x, k), jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=kernels.DN))


# ---------------------------------------------------------------------------------------------------------- matmuls


@pytest.mark.parametrize("x_shape", [(8, 20), (2, 3, 20)])
def test_dense_accumulates_bfloat16_in_float32_and_leaves_float32_alone(x_shape):
  """nets.Dense is nn.Dense (same parameters; float32 outputs and gradients bit for bit); with bfloat16 operands
  each matmul, forward and both gradients, is the float32-accumulated product rounded to bfloat16 once."""
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
  y, vjp = jax.vjp(lambda x, k: kernels.dot_general(x, k, (((x.ndim - 1,), (0,)), ((), ()))), xb, kb)
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
  assert kernels.dot_general(a, b, dims).dtype == bf
  jaxpr = jax.make_jaxpr(kernels.dot_general, static_argnums=2)(a, b, dims)
  assert "preferred_element_type=float32" not in str(jaxpr)
  asks = jax.make_jaxpr(lambda x, k: kernels.dot_general(x, k, (((1,), (0,)), ((), ())), preferred_element_type=bf))
  assert "preferred_element_type=float32" not in str(asks(xb2, kb))


# -------------------------------------------------------------------------------------------------------- BatchNorm


def test_channel_sums_is_the_column_sum_in_value_and_gradient(monkeypatch):
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 5))
  dy = jax.random.normal(jax.random.PRNGKey(1), (5,))
  for _ in range(2):  # kernels as this backend has them, then off
    y, vjp = jax.vjp(lambda x: kernels.channel_sums(x), x)
    y_ref, vjp_ref = jax.vjp(lambda x: jnp.sum(x, axis=0), x)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(vjp(dy)[0], vjp_ref(dy)[0])
    _not_cpu(monkeypatch)
  assert "dot_general" not in _jaxpr(kernels.channel_sums, x)


@pytest.mark.parametrize("shape", [(16, 24), (4, 5, 5, 3)])
def test_batch_norm_is_flax_batch_norm(shape):
  """nets.BatchNorm (closed-form backward, sums as matmuls on CPU) against nn.BatchNorm: the same variables, outputs,
  running statistics and gradients, in training and evaluation mode."""
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
  (got_y, got_mean, got_var), vjp = jax.vjp(lambda *a: kernels.batch_norm_train(*a, 1e-5), x, scale, bias)
  (want_y, want_mean, want_var), vjp_ref = jax.vjp(formula, x, scale, bias)
  chex.assert_trees_all_close((got_y, got_mean, got_var), (want_y, want_mean, want_var), rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(vjp(cts), vjp_ref(cts), rtol=1e-4, atol=1e-4)


def test_batch_norm_sums_are_matmuls_on_cpu():
  """On CPU the statistics and the backward pass's sums compile to dots. Compiled with xla_cpu_ynn none,
  nn.BatchNorm's reductions become XLA:CPU's slow reduce-windows."""
  if not kernels.enabled():
    pytest.skip("CPU compilation")
  m = nets.BatchNorm()
  x = jnp.ones((128, 7, 7, 64))
  variables = m.init(jax.random.PRNGKey(0), x)
  loss = lambda p, x: jnp.sum(m.apply({**variables, "params": p}, x, mutable=["batch_stats"])[0] ** 2)  # noqa: E731
  lowered = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(variables["params"], x)
  hlo = lowered.compile(xla.compiler_options("none")).as_text()
  assert "reduce-window" not in hlo and " dot(" in hlo
