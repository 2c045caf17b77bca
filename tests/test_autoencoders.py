"""The autoencoder catalogue: losses against numpy formulas, noise, dropout, and two short learning checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import config as cfg
from genjax import data
from genjax.errors import UserError
from genjax.models import MODELS, ae_linear, dae, sparse_ae

AE_FAMILIES = ("ae", "ae_dense", "ae_linear", "sparse_ae", "dae")
B = 8


def _config(name, **model):
  c = cfg.model_config(name)
  for k, v in model.items():
    c.model[k] = v
  return c


def _batch(n=B, seed=0):
  x = jax.random.uniform(jax.random.PRNGKey(seed), (n, 28, 28, 1))
  return {"image": x, "label": jnp.zeros((n,), jnp.int32)}


def _small_config(name, **model):
  """The experiment's config; dense families get a 32-d code so that their layers share shapes (and compiles)."""
  return _config(name, **model) if name == "ae" else _config(name, code_dim=32, **model)


@functools.cache
def _state(name, dropout=0.0):
  """A freshly initialized state for `_batch()`, built once per test session (eagerly: the op-by-op programs are
  shared by every state, where jitting each init would compile it whole)."""
  return MODELS[name].init_state(jax.random.PRNGKey(1), _small_config(name, dropout=dropout), _batch())


def _step(name, **static):
  """The family's jitted train_step with `static` hyperparameters bound, compiled once per session for each state
  type; keywords given in the call are traced."""
  return _jitted_step(name, tuple(sorted(static.items())))


@functools.cache
def _jitted_step(name, static):
  return jax.jit(functools.partial(MODELS[name].train_step, **dict(static)))


def _np(a):
  return np.asarray(a, np.float64)


# --- losses against numpy ---------------------------------------------------------------------------------------

def test_l1_penalty_matches_numpy():
  h = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
  np.testing.assert_allclose(sparse_ae.l1_penalty(h), np.abs(h).sum(-1), rtol=1e-6)
  np.testing.assert_allclose(sparse_ae.penalty(h, "l1", 0.05), np.abs(h).sum(-1).mean(), rtol=1e-6)


def _kl_numpy(h, rho):
  rho_hat = _np(h).mean(0)
  return np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))


@pytest.mark.parametrize("rho", [0.05, 0.3])
def test_kl_penalty_matches_closed_form(rho):
  h = jax.nn.sigmoid(jax.random.normal(jax.random.PRNGKey(0), (16, 10)) * 2 - 1)
  np.testing.assert_allclose(jax.jit(sparse_ae.kl_penalty)(h, rho), _kl_numpy(h, rho), rtol=1e-5)
  assert float(sparse_ae.kl_penalty(h, rho)) > 0


def test_kl_penalty_is_zero_when_mean_activation_equals_rho():
  # Per-example codes differ, but every unit's batch mean is exactly rho.
  rho = 0.25
  h = jnp.array([[0.1, 0.25, 0.4], [0.4, 0.25, 0.1]])
  assert abs(float(sparse_ae.kl_penalty(h, rho))) < 1e-6
  assert float(sparse_ae.kl_penalty(h, 0.1)) > 0.05


@pytest.mark.parametrize("sparsity,weight", [("kl", 1e-3), ("l1", 1e-4)])
def test_sparse_step_loss_is_reconstruction_plus_weighted_penalty(sparsity, weight):
  state, batch = _state("sparse_ae"), _batch()
  _, m = _step("sparse_ae", loss="mse", sparsity=sparsity, sparsity_weight=weight, rho=0.05)(state, batch,
                                                                                            jax.random.PRNGKey(2))
  x = _np(batch["image"]).reshape(B, -1)
  h = _np(jax.jit(MODELS["sparse_ae"].encode)(state, batch["image"]))  # dropout is 0 by default: the code of training
  x_hat = _np(jax.jit(MODELS["sparse_ae"].reconstruct)(state, batch["image"])).reshape(B, -1)
  mse = np.mean((x_hat - x) ** 2)
  pen = _kl_numpy(h, 0.05) if sparsity == "kl" else np.abs(h).sum(-1).mean()
  np.testing.assert_allclose(m["mse"], mse, rtol=1e-4)
  np.testing.assert_allclose(m["penalty"], pen, rtol=1e-4)
  np.testing.assert_allclose(m["loss"], mse + weight * pen, rtol=1e-4)
  np.testing.assert_allclose(m["active_frac"], np.mean(h > sparse_ae.ACTIVE_THRESHOLD), atol=1e-6)
  np.testing.assert_allclose(m["mean_code"], h.mean(), rtol=1e-5)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_dense_reconstruction_losses_match_numpy(loss):
  state, batch = _state("ae_dense"), _batch()
  _, m = _step("ae_dense", loss=loss)(state, batch, jax.random.PRNGKey(2))
  x = _np(batch["image"]).reshape(B, -1)
  p = _np(jax.jit(MODELS["ae_dense"].reconstruct)(state, batch["image"])).reshape(B, -1)
  ref = {"mse": np.mean((p - x) ** 2),
         "bce": np.mean(-np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=-1))}
  assert set(m) == {"loss", loss}  # the other term is eval_step's: computing it every step cost 29% of the speed
  np.testing.assert_allclose(m["loss"], ref[loss], rtol=1e-4)
  np.testing.assert_allclose(m[loss], ref[loss], rtol=1e-4)
  per = jax.jit(MODELS["ae_dense"].eval_step)(state, batch, None)
  np.testing.assert_allclose(np.mean(per["mse"]), ref["mse"], rtol=1e-4)
  np.testing.assert_allclose(np.mean(per["bce"]), ref["bce"], rtol=1e-4)


def test_linear_ae_is_linear_and_exposes_its_matrices():
  state, batch = _state("ae_linear"), _batch()
  w, w_dec = _np(ae_linear.encoder_matrix(state)), _np(ae_linear.decoder_matrix(state))
  assert w.shape == w_dec.shape == (784, 32)
  x = _np(batch["image"]).reshape(B, -1)
  b, b_dec = _np(state.params["encoder"]["bias"]), _np(state.params["decoder"]["bias"])
  np.testing.assert_allclose(jax.jit(ae_linear.encode)(state, batch["image"]), x @ w + b, rtol=1e-4, atol=1e-5)
  x_hat = (x @ w + b) @ w_dec.T + b_dec
  np.testing.assert_allclose(_np(jax.jit(ae_linear.project)(state, batch["image"])).reshape(B, -1), x_hat,
                             rtol=1e-4, atol=1e-5)
  _, m = _step("ae_linear")(state, batch, jax.random.PRNGKey(2))
  np.testing.assert_allclose(m["mse"], np.mean((x_hat - x) ** 2), rtol=1e-4)


# --- denoising --------------------------------------------------------------------------------------------------

def test_dae_loss_is_against_the_clean_input():
  # Mask noise at level 1 zeroes every pixel: the network sees only zeros, so its output is the constant
  # x0 = reconstruct(0). Against the clean x the loss is mean (x0 - x)^2; against the noisy input it would be mean x0^2.
  state, batch = _state("dae"), _batch()
  _, m = _step("dae", loss="mse", noise="mask")(state, batch, jax.random.PRNGKey(2), noise_level=1.0)
  x = _np(batch["image"])
  x0 = _np(jax.jit(MODELS["dae"].reconstruct)(state, jnp.zeros_like(batch["image"])))
  np.testing.assert_allclose(m["mse"], np.mean((x0 - x) ** 2), rtol=1e-4)
  assert abs(float(m["mse"]) - np.mean(x0 ** 2)) > 0.05


@pytest.mark.parametrize("level", [0.25, 0.5])
def test_mask_noise_zeroes_about_a_fraction_level(level):
  x = jnp.ones((64, 28, 28, 1))
  x_noisy = dae.corrupt(x, jax.random.PRNGKey(0), "mask", level)
  zeroed = float(jnp.mean(x_noisy == 0.0))
  assert abs(zeroed - level) < 0.01  # 50k pixels: the standard error is about 0.002
  assert bool(jnp.all((x_noisy == 0.0) | (x_noisy == 1.0)))  # kept pixels are not rescaled
  np.testing.assert_array_equal(dae.corrupt(x, jax.random.PRNGKey(0), "mask", 0.0), x)
  np.testing.assert_array_equal(dae.corrupt(x, jax.random.PRNGKey(0), "mask", 1.0), 0 * x)


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_gaussian_noise_has_the_right_std(sigma):
  x = jnp.full((64, 28, 28, 1), 0.5)
  d = _np(dae.corrupt(x, jax.random.PRNGKey(0), "gaussian", sigma) - x)
  assert abs(d.std() - sigma) < 0.01 * sigma and abs(d.mean()) < 0.02 * sigma  # 50k draws: 3 and 4 standard errors


def test_dae_noise_follows_the_step():
  state, batch = _state("dae"), _batch()
  step = functools.partial(_step("dae", loss="mse", noise="gaussian"), noise_level=0.5)
  rng = jax.random.PRNGKey(2)
  a = step(state, batch, rng)[1]["loss"]  # the same parameters: only the noise can move the loss
  assert float(step(state, batch, rng)[1]["loss"]) == float(a)
  assert float(step(state.replace(step=state.step + 1), batch, rng)[1]["loss"]) != float(a)


def test_dae_eval_reports_denoising_per_example():
  state, batch = _state("dae"), _batch()
  per = jax.jit(functools.partial(dae.eval_step, noise="mask", noise_level=0.5))(state, batch, jax.random.PRNGKey(3))
  x_noisy = dae.corrupt(batch["image"], jax.random.PRNGKey(3), "mask", 0.5)
  x = _np(batch["image"]).reshape(B, -1)
  mse = np.mean((_np(jax.jit(MODELS["dae"].reconstruct)(state, x_noisy)).reshape(B, -1) - x) ** 2, axis=-1)
  np.testing.assert_allclose(per["denoise_psnr"], -10 * np.log10(mse), rtol=1e-4)
  noisy_mse = np.mean((_np(x_noisy).reshape(B, -1) - x) ** 2, axis=-1)
  np.testing.assert_allclose(per["noisy_psnr"], -10 * np.log10(noisy_mse), rtol=1e-4)


# --- dropout and the shared interface ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", AE_FAMILIES)
def test_dropout_is_on_in_training_and_off_in_eval(name):
  batch = _batch()
  family = MODELS[name]
  kw, traced = dict(_small_config(name).step), {}
  if name == "dae":  # no input noise, so that dropout is the only randomness
    kw.pop("noise_level")
    traced["noise_level"] = 0.0
  s0, s1 = _state(name), _state(name, dropout=0.5)
  # Dropout has no parameters: both states hold the same arrays, and eval ignores the rate.
  out = ae_linear.project if name == "ae_linear" else family.reconstruct  # project: the unclipped training output
  x_hat0, x_hat1 = jax.jit(out)(s0, batch["image"]), jax.jit(out)(s1, batch["image"])
  np.testing.assert_array_equal(x_hat0, x_hat1)
  np.testing.assert_array_equal(jax.jit(out)(s1, batch["image"]), x_hat1)
  eval_mse = np.mean((_np(x_hat1) - _np(batch["image"])) ** 2)
  np.testing.assert_allclose(np.mean(jax.jit(family.eval_step)(s1, batch, jax.random.PRNGKey(4))["mse"]), eval_mse,
                             rtol=1e-5)
  step = functools.partial(_step(name, **kw), **traced)
  m0, m1 = step(s0, batch, jax.random.PRNGKey(2))[1], step(s1, batch, jax.random.PRNGKey(2))[1]
  np.testing.assert_allclose(m0["mse"], eval_mse, rtol=1e-4)  # without dropout training sees the eval network
  assert abs(float(m1["mse"]) - eval_mse) > 1e-3 * eval_mse
  m1b = step(s1, batch, jax.random.PRNGKey(3))[1]  # a fresh mask for another key
  assert float(m1b["mse"]) != float(m1["mse"])


@pytest.mark.parametrize("name", AE_FAMILIES)
def test_encode_decode_reconstruct(name):
  family, batch, state = MODELS[name], _batch(), _state(name)
  h = jax.jit(family.encode)(state, batch["image"])
  assert h.shape == (B, _small_config(name).model.code_dim)
  x_hat = jax.jit(family.decode)(state, h)
  assert x_hat.shape == (B, 28, 28, 1) and float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1
  np.testing.assert_allclose(x_hat, jax.jit(family.reconstruct)(state, batch["image"]), rtol=1e-5, atol=1e-6)


def test_validation_errors():
  c = _config("sparse_ae")
  c.model.activation = "relu"
  with pytest.raises(UserError, match="sparsity='kl' needs codes in"):
    sparse_ae.validate(c)
  c = _config("dae")
  c.step.noise = "salt"
  with pytest.raises(UserError, match="step.noise must be one of"):
    dae.validate(c)
  c = _config("ae_dense", dropout=1.0)
  with pytest.raises(UserError, match="model.dropout"):
    MODELS["ae_dense"].validate(c)


# --- learning ---------------------------------------------------------------------------------------------------

N_TRAIN = 2048


@pytest.fixture(scope="module")
def mnist():
  train_x = jnp.asarray(data.load("mnist", "train", N_TRAIN).images, jnp.float32) / 255.0
  test_x = jnp.asarray(data.load("mnist", "test").images[:512], jnp.float32) / 255.0
  return train_x, test_x


def _fit(family, config, x, steps, batch_size):
  """`steps` minibatch steps of the family's train_step in one lax.scan."""
  step = functools.partial(family.train_step, **config.step)
  state = family.init_state(jax.random.PRNGKey(0), config, {"image": x[:batch_size]})
  idx = jax.random.randint(jax.random.PRNGKey(1), (steps, batch_size), 0, len(x))

  @jax.jit
  def run(state, idx):
    return jax.lax.scan(lambda s, i: (step(s, {"image": x[i]}, jax.random.PRNGKey(2))[0], None), state, idx)[0]

  return run(state, idx)


def test_linear_ae_reaches_the_pca_error(mnist):
  # Measured: 1.009 x PCA's MSE after 2000 steps of 32 images (2 s of CPU).
  x, _ = mnist
  k = 16
  c = _config("ae_linear", code_dim=k)
  c.optim.lr, c.optim.decay_steps = 1e-2, 2000
  state = _fit(MODELS["ae_linear"], c, x, 2000, 32)
  mse = float(jnp.mean(jax.jit(MODELS["ae_linear"].eval_step)(state, {"image": x}, None)["mse"]))
  flat = _np(x).reshape(len(x), -1)
  s = np.linalg.svd(flat - flat.mean(0), compute_uv=False)
  pca_mse = np.sum(s[k:] ** 2) / flat.size
  assert 0.999 * pca_mse <= mse < 1.03 * pca_mse, (mse, pca_mse)  # PCA is the optimum: the AE cannot beat it


def test_dae_denoises_better_than_identity(mnist):
  # Measured: 17.3 dB after 800 steps against 13.2 dB for the noisy input, 11.9 dB for the mean training image and
  # 8.0 dB for the untrained network.
  x, test_x = mnist
  c = _config("dae", code_dim=128)
  c.step.noise, c.step.noise_level = "mask", 0.5
  state = _fit(MODELS["dae"], c, x, 800, 32)
  per = jax.jit(functools.partial(MODELS["dae"].eval_step, noise="mask", noise_level=0.5))(state, {"image": test_x},
                                                                                 jax.random.PRNGKey(4))
  denoised, noisy = float(jnp.mean(per["denoise_psnr"])), float(jnp.mean(per["noisy_psnr"]))
  mean_image = float(-10 * jnp.log10(jnp.mean((x.mean(0) - test_x) ** 2)))
  assert denoised > noisy + 2.0 and denoised > mean_image + 2.0, (denoised, noisy, mean_image)
