"""Linear autoencoder: h = W x + b, x_hat = W' h + b', trained on mean squared error.

At its optimum x_hat = mu + P (x - mu), with P the orthogonal projection onto the span of the top `code_dim`
principal components of the training data (Baldi & Hornik, 1989): the learnable biases do the centering, the
columns of W' span the PCA subspace (they need not be orthonormal). `encoder_matrix` and `decoder_matrix` return W
and W' as [D, k] so an experiment can compare the subspaces with PCA's; `project` is the unclipped reconstruction
that PCA's error is compared with (`reconstruct` clips it to [0, 1] for pictures, which lowers the error).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genjax import losses
from genjax.models import ae_dense
from genjax.models.ae_dense import DenseAutoEncoder, forward, psnr
from genjax.state import pmean, step_key


def init_state(rng, config, example_batch):
  return ae_dense.init_state(rng, config, example_batch, activation="linear")


def train_step(state, batch, rng, *, axis_name=None):
  """One Adam step on the batch mean of mse = mean_i (x_hat_i - x_i)^2, x_hat = W'(W x + b) + b' (no clipping)."""
  x = batch["image"]
  rng = step_key(rng, state.step, axis_name)  # used only by dropout

  def loss_fn(params):
    x_hat, _ = forward(state, params, x, rng)
    mse = jnp.mean(losses.squared_error(x_hat, x))
    return mse, mse

  (value, mse), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(pmean(grads, axis_name))
  return state, pmean({"loss": value, "mse": mse}, axis_name)


def eval_step(state, batch, rng):
  """Per-example `mse` of the unclipped linear reconstruction (PCA's objective) and its `psnr` (dB), each [B]."""
  del rng
  mse = losses.squared_error(project(state, batch["image"]), batch["image"])
  return {"mse": mse, "psnr": psnr(mse)}


def encoder_matrix(state):
  """W as [D, k]: code h = x_flat @ W + b."""
  return state.params["encoder"]["kernel"]


def decoder_matrix(state):
  """W' as [D, k]: x_hat_flat = h @ W'.T + b'; at the optimum its columns span the top-k principal subspace."""
  return state.params["decoder"]["kernel"].T


def encode(state, x):
  """The code h = W x + b [B, k]."""
  return state.apply_fn(state.variables, x, method=DenseAutoEncoder.encode)


def decode_linear(state, h):
  """W' h + b' [B, H, W, C], unclipped."""
  return state.apply_fn(state.variables, h, method=DenseAutoEncoder.decode)


def decode(state, h):
  """W' h + b' clipped to [0, 1]."""
  return jnp.clip(decode_linear(state, h), 0.0, 1.0)


def project(state, x):
  """The unclipped linear reconstruction W'(W x + b) + b' (compare with PCA's mu + P (x - mu))."""
  x_hat, _ = state.apply_fn(state.variables, x)
  return x_hat


def reconstruct(state, x):
  """The linear reconstruction clipped to [0, 1], for pictures."""
  return jnp.clip(project(state, x), 0.0, 1.0)


FAMILY = ae_dense.FAMILY._replace(name="ae_linear", init_state=init_state, train_step=train_step,
                                  eval_step=eval_step, encode=encode, decode=decode, reconstruct=reconstruct)
