"""genjax.models.nets: the Linen layers keep Flax's parameter trees and compute Flax's ops, gradients included,
whichever kernel computes them (the kernels themselves: test_kernels.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import kernels
from genjax.models import nets


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
  assert uses_conv == (not kernels.enabled() or 4 * features > kernels.TAPS_MAX_FEATURES)


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
  assert ("lhs_dilation=(2, 2)" in jaxpr) == (not kernels.enabled())


def test_depth_to_space_places_channel_groups():
  x = jnp.arange(8.0).reshape(1, 1, 2, 4)  # two pixels, four channel groups of one channel
  y = nets.depth_to_space(x)
  np.testing.assert_array_equal(y[0, :, :, 0], [[0, 1, 4, 5], [2, 3, 6, 7]])
