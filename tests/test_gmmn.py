"""The GMMN family: learning a toy distribution; GMMN+AE on a freshly trained autoencoder (the estimators:
test_mmd.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import arrays, small_config

from genjax import checkpoint, mmd, train
from genjax import config as cfg
from genjax.errors import UserError
from genjax.models import MODELS, gmmn

CENTERS = jnp.array([[0.25, 0.25], [0.75, 0.75]])


def _blobs(rng, n):
  """Two Gaussian blobs (std 0.05) in [0, 1]^2, as [n, 1, 2, 1] 'images' of two pixels."""
  k1, k2 = jax.random.split(rng)
  return (CENTERS[jax.random.randint(k1, (n,), 0, 2)] + 0.05 * jax.random.normal(k2, (n, 2))).reshape(n, 1, 2, 1)


def test_gmmn_learns_two_blobs():
  c = cfg.model_config("gmmn")
  c.model.hidden, c.model.noise_dim = (64, 64), 2
  bw = (0.05, 0.1, 0.2, 0.4)
  batch = {"image": _blobs(jax.random.PRNGKey(0), 128), "label": jnp.zeros(128, jnp.int32)}
  state = jax.jit(lambda k: gmmn.init_state(k, c, batch))(jax.random.key(0, impl="rbg"))

  def one(s, i):
    b = {"image": _blobs(jax.random.fold_in(jax.random.PRNGKey(1), i), 128), "label": batch["label"]}
    return gmmn.train_step(s, b, jax.random.PRNGKey(2), bandwidths=bw)

  def measure(s):
    g = gmmn.sample(s, jax.random.PRNGKey(5), 1000).reshape(1000, 2)
    near = jnp.min(jnp.linalg.norm(g[:, None] - CENTERS[None], axis=-1), axis=1) < 0.15
    return mmd.mmd2_unbiased(g, _blobs(jax.random.PRNGKey(6), 1000).reshape(1000, 2), bw), near, g[:, 0] > 0.5

  @jax.jit
  def run(s):
    # What the first step should report: MMD^2_u under every configured bandwidth between its real batch and
    # G(u), u drawn from fold_in(rng, step = 0).
    fake = gmmn.generate(s, jax.random.fold_in(jax.random.PRNGKey(2), 0), 128)
    real = _blobs(jax.random.fold_in(jax.random.PRNGKey(1), 0), 128)
    first = mmd.mmd2_unbiased(fake, real, bw), mmd.mmd2_unbiased(fake, real, bw[:-1])
    before = measure(s)[0]
    s, metrics = jax.lax.scan(one, s, jnp.arange(300))
    return first, before, measure(s), metrics["loss"]

  (expected, fewer), before, (after, near, right), loss = run(state)
  np.testing.assert_allclose(loss[0], expected, rtol=1e-5)
  assert abs(float(loss[0] - fewer)) > 1e-3
  # Measured: MMD^2 2.9 -> 0.07; 84% of samples within 0.15 of a center, 52% on the right blob.
  assert float(after) < 0.1 * float(before), (before, after)
  assert float(loss[-50:].mean()) < 0.1 * float(loss[:10].mean())
  assert float(near.mean()) > 0.7
  assert 0.3 < float(right.mean()) < 0.7  # both modes, not one


def test_gmmn_without_a_trained_autoencoder_says_what_to_run(tmp_path):
  c = cfg.model_config("gmmn_ae")
  assert c.model.name == "gmmn" and c.model.ae_workdir
  c.model.ae_workdir = str(tmp_path / "nowhere")
  for call in (lambda: gmmn.validate(c), lambda: gmmn.prepare(c, np.zeros((2, 28, 28, 1), np.uint8))):
    with pytest.raises(UserError, match=r"make train MODEL=ae_dense") as e:
      call()
    assert "\n" not in str(e.value)
  c.model.ae_workdir = str(tmp_path / "ae")  # where `make train MODEL=ae` would have written
  with pytest.raises(UserError, match=r"`make train MODEL=ae` first"):
    gmmn.validate(c)
  c.model.ae_workdir = str(tmp_path / "nowhere")
  (tmp_path / "nowhere").mkdir()  # a workdir with a config but no checkpoint names its own model
  (tmp_path / "nowhere" / "config.json").write_text('{"config": {"model": {"name": "ae"}}}')
  with pytest.raises(UserError, match=r"no checkpoint; run `make train MODEL=ae` first"):
    gmmn.validate(c)


def _ae_workdir(root):
  """A dense (or, before it exists, the conv) autoencoder trained for 8 steps under root/ae."""
  name = "ae_dense" if "ae_dense" in MODELS else "ae"
  train.train(small_config(name), root / "ae", quiet=True)
  return root / "ae", name


@pytest.mark.slow  # 22 s: trains an AE, then a GMMN on it, through the real loop
def test_gmmn_trains_in_a_frozen_autoencoders_code_space(tmp_path):
  ae_dir, ae_name = _ae_workdir(tmp_path)
  c = small_config("gmmn_ae")  # batch 32 on 512 images, 8 steps, checkpoints at 4 and 8
  c.model.ae_workdir = str(ae_dir)
  c.model.hidden = (32,)
  gmmn.validate(c)
  result = train.train(c, tmp_path / "gmmn", quiet=True)
  state = result.state
  assert state.ae_name == ae_name and int(state.step) == 8
  # The AE inside is the latest AE checkpoint, untouched by training, without optimizer state.
  family = MODELS[ae_name]
  example = {"image": jnp.zeros((1, 28, 28, 1)), "label": jnp.zeros(1, jnp.int32)}
  ae_config = small_config(ae_name)
  ckpts = checkpoint.Checkpoints(ae_dir / "checkpoints")
  ae = ckpts.restore(family.init_state(jax.random.PRNGKey(0), ae_config, example), 8)
  ckpts.close()
  chex.assert_trees_all_equal(arrays(state.ae)["params"], arrays(ae)["params"])
  assert state.ae.opt_state == ()
  # Codes enter the MMD centered and scaled: on the images the statistics came from, mean 0 and mean variance 1.
  from genjax import data
  x = jnp.asarray(data.load("mnist", "train", 512).images, jnp.float32) / 255.0
  h = np.asarray(jax.jit(gmmn.to_space)(state, x))
  code_dim = np.asarray(jax.jit(family.encode)(ae, x[:1])).shape[-1]
  assert h.shape == (512, code_dim)
  np.testing.assert_allclose(h.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(h.var(0).mean(), 1.0, rtol=1e-3)
  # The generator outputs codes; `sample` decodes them through the AE.
  rng = jax.random.PRNGKey(3)
  out, codes = jax.jit(lambda s: (gmmn.sample(s, rng, 6), gmmn.generate(s, rng, 6)))(state)
  chex.assert_shape(codes, (6, code_dim))
  chex.assert_shape(out, (6, 28, 28, 1))
  np.testing.assert_allclose(out, family.decode(ae, codes * state.code_scale + state.code_shift), atol=1e-6)
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  # The checkpoint holds the whole state, frozen AE included, and restores into a fresh one.
  fresh = gmmn.prepare(c, np.zeros((16, 28, 28, 1), np.uint8)).init_state(jax.random.PRNGKey(9), c, example)
  ckpts = checkpoint.Checkpoints(tmp_path / "gmmn" / "checkpoints")
  chex.assert_trees_all_equal(arrays(ckpts.restore(fresh, 8)), arrays(state))
  ckpts.close()
