"""VAE catalogue: the importance-weighted bound against the ELBO and exact log p(x), chunking, label conditioning,
2-d latents and the KL weight."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from genjax import config as cfg
from genjax import data
from genjax.models import MODELS, cvae, iwae, likelihood, vae_dense


def _config(name, **model):
  c = cfg.model_config(name)
  for k, v in model.items():
    c.model[k] = v
  return c


SMALL = {"vae": {"features": (4, 8)}, "vae_dense": {"hidden": (32,)}, "cvae": {"hidden": (32,)},
         "iwae": {"hidden": (32,)}}  # test-size networks


@functools.cache
def _x():
  return jax.random.uniform(jax.random.PRNGKey(0), (4, 28, 28, 1))


@functools.cache
def _state(name, **model):
  """A test-size `name` with a 2-d latent on `_x()`, built once per module."""
  c = _config(name, latent_dim=2, **SMALL[name], **model)
  batch = {"image": _x(), "label": jnp.arange(4, dtype=jnp.int32) % 10}
  # An RBG key: XLA:CPU compiles threefry draws of 4-d conv kernels slowly (measured 25 s against 3.5 s here).
  init = jax.jit(functools.partial(MODELS[name].init_state, config=c, example_batch=batch))
  return init(jax.random.key(1, impl="rbg"))


def _bernoulli_log_lik(logits, x):
  """log p(x | logits) summed over pixels, float64, with the last axes flattened."""
  logits = np.asarray(logits, np.float64)
  return -np.sum(np.logaddexp(0.0, logits) - np.asarray(x, np.float64) * logits, axis=-1)


def test_iwae_bound_with_one_sample_is_the_single_sample_elbo():
  x, state = _x(), _state("vae_dense")
  rng = jax.random.PRNGKey(7)
  bound, (mean, logvar) = jax.jit(lambda r: (likelihood.iwae_bound(state, x, r, 1), vae_dense.encode(state, x)))(rng)
  # The ELBO's integrand log p(x | z) + log p(z) - log q(z | x) at the bound's draw z = mean + sigma * eps_0,
  # with densities from scipy.
  mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
  eps = np.asarray(jax.random.normal(jax.random.fold_in(rng, 0), mean.shape), np.float64)
  std = np.exp(0.5 * logvar)
  z = mean + std * eps
  logits = jax.jit(lambda z: state.apply_fn(state.variables, z, method="decode"))(jnp.asarray(z, jnp.float32))
  log_px = _bernoulli_log_lik(np.reshape(logits, (4, -1)), np.reshape(x, (4, -1)))
  elbo = log_px + norm.logpdf(z).sum(-1) - norm.logpdf(z, mean, std).sum(-1)
  np.testing.assert_allclose(np.asarray(bound, np.float64), elbo, rtol=1e-5)


def test_iwae_bound_with_one_sample_averages_to_the_analytic_elbo():
  x, state = _x(), _state("vae_dense")
  keys = jax.random.split(jax.random.PRNGKey(1), 4000)

  @jax.jit
  def mc_kl_and_kl(keys):
    # log w - log p(x | z) = log p(z) - log q(z | x): minus a one-draw KL estimate, whose mean is the closed form.
    def one(r):
      eps = jax.random.normal(jax.random.fold_in(r, 0), (4, 2))
      return -(likelihood.iwae_bound(state, x, r, 1) + vae_dense.elbo_terms(state, state.params, x, eps)["recon"])
    return jax.vmap(one)(keys), vae_dense.elbo_terms(state, state.params, x, jnp.zeros((4, 2)))["kl"]

  mc_kl, kl = mc_kl_and_kl(keys)
  se = np.std(mc_kl, axis=0) / np.sqrt(len(keys))
  np.testing.assert_allclose(np.mean(mc_kl, axis=0), kl, atol=4 * float(np.max(se)))


def _one_d_model():
  """A 1-d latent VAE on 4x4 binary images, encoder deliberately off (q far from the posterior), and its exact
  log p(x) = log integral N(z; 0, 1) p(x | z) dz by quadrature on a fine grid."""
  x = (jax.random.uniform(jax.random.PRNGKey(0), (6, 4, 4, 1)) < 0.5).astype(jnp.float32)
  c = _config("vae_dense", latent_dim=1, hidden=(8,))
  state = jax.jit(lambda k: vae_dense.init_state(k, c, {"image": x, "label": jnp.zeros(6, jnp.int32)}))(
      jax.random.key(1, impl="rbg"))
  params = dict(state.params)
  params["decoder"] = jax.tree.map(lambda a: 2.0 * a, params["decoder"])  # a sharper posterior
  params["encoder"] = {**params["encoder"], "out": {**params["encoder"]["out"], "bias": jnp.array([0.8, -1.2])}}
  state = state.replace(params=params)
  zs = np.linspace(-10.0, 10.0, 20001)
  logits = jax.jit(lambda z: state.apply_fn(state.variables, z, method="decode"))(jnp.asarray(zs[:, None]))
  log_px_z = _bernoulli_log_lik(np.reshape(logits, (len(zs), 1, -1)), np.reshape(x, (1, 6, -1)))  # [G, B]
  log_px = logsumexp(log_px_z + norm.logpdf(zs)[:, None], axis=0) + np.log(zs[1] - zs[0])
  return state, x, log_px


def test_iwae_bound_increases_with_k_below_the_exact_log_likelihood():
  state, x, log_px = _one_d_model()
  draws = 400  # x tiled: every row draws its own noise, so one call gives 400 independent draws per example

  @jax.jit
  def bounds(rng):
    xs = jnp.tile(x, (draws, 1, 1, 1))
    return [likelihood.iwae_bound(state, xs, jax.random.fold_in(rng, k), k).reshape(draws, -1) for k in (1, 5, 50)]

  means, ses = {}, {}
  for k, b in zip((1, 5, 50), bounds(jax.random.PRNGKey(2))):
    gap = np.asarray(b, np.float64) - log_px[None]  # [draws, B]
    means[k], ses[k] = gap.mean(), gap.mean(axis=1).std() / np.sqrt(draws)
  # Measured gaps: -2.2, -0.65 and -0.07 nats (standard errors 0.05, 0.02, 0.008). A missing -log k would
  # lift L_50 3.9 nats above log p(x); averaging log w instead of w would leave all three at the ELBO.
  assert means[1] < means[5] - 1.0, means
  assert means[5] < means[50] - 0.3, means
  assert means[50] <= 3 * ses[50], means
  assert means[50] > -0.2, means


def test_chunked_iwae_bound_equals_unchunked():
  x, state = _x(), _state("iwae")
  rng = jax.random.PRNGKey(3)
  # 7 leaves a partial last chunk; the noise of sample i is the same whatever the chunking.
  both = jax.jit(lambda r: (likelihood.iwae_bound(state, x, r, 50), likelihood.iwae_bound(state, x, r, 50, chunk=7)))
  whole, parts = both(rng)
  np.testing.assert_allclose(parts, whole, rtol=1e-5)


def test_iwae_train_step_reports_the_bound_and_a_looser_elbo():
  x, state = _x(), _state("iwae")
  batch = {"image": x, "label": jnp.zeros(4, jnp.int32)}

  @jax.jit
  def run(rng):
    bound = likelihood.iwae_bound(state, x, jax.random.fold_in(rng, 0), 5)
    return iwae.train_step(state, batch, rng, k=1)[1], iwae.train_step(state, batch, rng, k=5)[1], bound

  m1, m5, bound = run(jax.random.PRNGKey(4))
  np.testing.assert_allclose(m1["loss"], m1["neg_elbo"], rtol=1e-6)  # one sample: L_1 is the ELBO
  assert float(m5["loss"]) < float(m5["neg_elbo"])  # Jensen: log mean w >= mean log w, strictly here
  np.testing.assert_allclose(m5["loss"], -jnp.mean(bound), rtol=1e-5)


def test_vae_dense_kl_weight():
  x, state = _x(), _state("vae_dense")
  batch = {"image": x, "label": jnp.zeros(4, jnp.int32)}
  step = jax.jit(vae_dense.train_step)
  _, m0 = step(state, batch, jax.random.PRNGKey(5), beta=0.0)
  _, m2 = step(state, batch, jax.random.PRNGKey(5), beta=2.0)
  np.testing.assert_allclose(m0["loss"], m0["recon"], rtol=1e-6)
  np.testing.assert_allclose(m2["loss"], m2["recon"] + 2.0 * m2["kl"], rtol=1e-6)
  np.testing.assert_allclose(m2["neg_elbo"], m2["recon"] + m2["kl"], rtol=1e-6)


@pytest.mark.parametrize("name", ["vae", "vae_dense", "cvae", "iwae"])
def test_two_dimensional_latent_decodes_a_grid_and_has_a_bound(name):
  x, state = _x(), _state(name)
  family = MODELS[name]
  g = jnp.linspace(-2.0, 2.0, 5)
  z = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
  cond = (cvae.one_hot(state, jnp.arange(4) % 10),) if name == "cvae" else ()

  @jax.jit
  def run(state):
    return family.encode(state, x), family.decode(state, z), likelihood.iwae_bound(state, x, jax.random.PRNGKey(0), 3,
                                                                             chunk=2, cond=cond)

  (mean, logvar), out, bound = run(state)
  chex.assert_shape([mean, logvar], (4, 2))
  chex.assert_shape(out, (25, 28, 28, 1))
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  assert float(jnp.std(out, axis=0).max()) > 0.0  # the grid's points decode to different images
  chex.assert_shape(bound, (4,))
  assert np.all(np.isfinite(bound)) and np.all(bound < 0)  # log-likelihood bound on 784 gray pixels


@functools.cache
def _trained_cvae():
  """A cvae with a 2-d latent (which leaves the class to the label) after 600 steps on 2048 MNIST images (batch
  64), and those images."""
  ds = data.load("mnist", "train", 2048)
  x_all = jnp.asarray(ds.images, jnp.float32) / 255.0
  y_all = jnp.asarray(ds.labels)
  c = _config("cvae", hidden=(128,), latent_dim=2)
  state = jax.jit(lambda k: cvae.init_state(k, c, {"image": x_all[:64], "label": y_all[:64]}))(
      jax.random.key(0, impl="rbg"))

  def one(state, i):
    idx = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(1), i), (64,), 0, x_all.shape[0])
    return cvae.train_step(state, {"image": x_all[idx], "label": y_all[idx]}, jax.random.PRNGKey(2))

  state, metrics = jax.jit(lambda s: jax.lax.scan(one, s, jnp.arange(600)))(state)
  return state, metrics, np.asarray(x_all), np.asarray(y_all)


def test_cvae_samples_follow_the_label():
  state, metrics, x, y = _trained_cvae()
  assert float(metrics["neg_elbo"][-20:].mean()) < float(metrics["neg_elbo"][:20].mean()) - 100.0
  labels = jnp.arange(100) % 10

  @jax.jit
  def draw(rng):
    return cvae.sample_class(state, rng, labels), cvae.sample_class(state, rng, (labels + 1) % 10), \
        cvae.sample(state, rng, 100)

  s, shifted, sampled = (np.asarray(a).reshape(100, -1) for a in draw(jax.random.PRNGKey(3)))
  np.testing.assert_allclose(sampled, s, atol=1e-6)  # `sample` draws labels arange(n) % num_classes
  # Samples are nearest to the real class mean of their own label far more often than chance (0.1), and the same
  # noise with the next label moves them to the next class.
  class_means = np.stack([x[y == j].reshape(-1, 784).mean(0) for j in range(10)])
  nearest = lambda a: np.argmin(((a[:, None] - class_means[None]) ** 2).sum(-1), axis=1)
  assert np.mean(nearest(s) == np.asarray(labels)) > 0.6
  assert np.mean(nearest(shifted) == np.asarray((labels + 1) % 10)) > 0.6


def test_cvae_infers_labels_and_reconstructs_without_them():
  state, _, x, y = _trained_cvae()
  x, y = jnp.asarray(x[:256]), jnp.asarray(y[:256])

  @jax.jit
  def run(rng):
    inferred = cvae.infer_labels(state, x)
    return (cvae.eval_step(state, {"image": x, "label": y}, rng), cvae.reconstruct(state, x),
            cvae.reconstruct(state, x, inferred), cvae.reconstruct(state, x, y))

  per, recon, recon_inferred, recon_true = run(jax.random.PRNGKey(4))
  assert float(per["label_accuracy"].mean()) > 0.5  # argmax_y ELBO(x | y); chance is 0.1
  np.testing.assert_allclose(recon, recon_inferred, atol=1e-6)
  chex.assert_shape(recon_true, (256, 28, 28, 1))
  assert float(jnp.mean((recon_true - x) ** 2)) < float(jnp.mean((recon_true[::-1] - x) ** 2))


# --- Burda, Grosse and Salakhutdinov (2015): genjax/configs/burda.py -------------------------------------------

def test_burda_architecture_has_the_papers_parameter_count():
  """x -> 200 -> 200 tanh -> 50 Gaussian units (mean and log-variance), the decoder mirrored to 784 logits."""
  c = cfg.model_config("burda")
  assert c.model.name == "iwae" and c.model.activation == "tanh" and c.train.batch_size == 20
  state = MODELS["iwae"].init_state(jax.random.PRNGKey(0), c, {"image": jnp.zeros((2, 28, 28, 1)),
                                                                "label": jnp.zeros((2,), jnp.int32)})
  dense = lambda i, o: i * o + o
  encoder = dense(784, 200) + dense(200, 200) + dense(200, 2 * 50)
  decoder = dense(50, 200) + dense(200, 200) + dense(200, 784)
  assert sum(x.size for x in jax.tree.leaves(state.params)) == encoder + decoder == 425_284


def test_burda_schedule_steps_the_rate_down_by_ten_to_the_minus_one_seventh():
  from genjax import optim
  epoch = 3
  schedule = optim.burda_schedule(1e-3, epoch)
  ends = np.cumsum([3 ** i * epoch for i in range(8)])  # 1, 3, 9, ... 2187 epochs: 3280 in all
  assert ends[-1] == 3280 * epoch
  for i, end in enumerate(ends):
    np.testing.assert_allclose(schedule(end - 1), 1e-3 * 10 ** (-i / 7), rtol=1e-5)
  np.testing.assert_allclose(schedule(0), 1e-3)
  c = cfg.model_config("burda")
  c.optim.epoch_steps = 0
  with pytest.raises(Exception, match="optim.epoch_steps"):
    cfg.check(c)


def test_dynamic_binarization_draws_anew_each_step_and_the_same_after_a_resume():
  """Pixels are 0 or 1, their mean is the grey level, a step draws the same pixels for the same key (a resumed run)
  and another step others."""
  x = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 11), (20000, 11))
  a = vae_dense.dynamic_binarization(jax.random.PRNGKey(1), x)
  assert set(np.unique(np.asarray(a))) <= {0.0, 1.0}
  np.testing.assert_allclose(np.asarray(a).mean(axis=0), np.linspace(0, 1, 11), atol=0.015)  # 4 sigma at p=0.5
  np.testing.assert_array_equal(a, vae_dense.dynamic_binarization(jax.random.PRNGKey(1), x))
  assert np.mean(np.asarray(a) != np.asarray(vae_dense.dynamic_binarization(jax.random.PRNGKey(2), x))) > 0.2
  # in the step: the iwae step at two step counts sees two binarizations of the same batch, and its loss differs
  c = cfg.model_config("burda")
  batch = {"image": jnp.full((4, 28, 28, 1), 0.5), "label": jnp.zeros((4,), jnp.int32)}
  state = MODELS["iwae"].init_state(jax.random.PRNGKey(0), c, batch)
  step = jax.jit(functools.partial(MODELS["iwae"].train_step, **c.step))
  _, m1 = step(state, batch, jax.random.PRNGKey(3))
  _, again = step(state, batch, jax.random.PRNGKey(3))
  _, m2 = step(state.replace(step=state.step + 1), batch, jax.random.PRNGKey(3))
  assert float(m1["loss"]) == float(again["loss"]) != float(m2["loss"])


# --- the 2-stochastic-layer model (genjax/models/iwae2.py, genjax/configs/burda2.py) ---------------------------

IWAE2_SMALL = {"latents": (6, 3), "hidden": (32, 32), "hidden_top": (16, 16)}  # a test-size 2-layer model


def _iwae2(k=5, **model):
  c = cfg.model_config("iwae2")
  c.step.k = k
  for key, v in {**IWAE2_SMALL, **model}.items():
    c.model[key] = v
  state = MODELS["iwae2"].init_state(jax.random.PRNGKey(0), c, {"image": _x(), "label": jnp.zeros((4,), jnp.int32)})
  return c, state


def test_burda_two_layer_architecture_has_the_papers_parameter_count():
  """x -> 200 -> 200 -> h1 (100) -> 100 -> 100 -> h2 (50), Gaussian layers as mean and log-variance; p mirrored."""
  c = cfg.model_config("burda2")
  assert c.model.name == "iwae2" and c.step.k == 1 and c.step.binarize and c.train.batch_size == 20
  assert c.optim.schedule == "burda" and c.optim.eps == 1e-4
  state = MODELS["iwae2"].init_state(jax.random.PRNGKey(0), c, {"image": jnp.zeros((2, 28, 28, 1)),
                                                                 "label": jnp.zeros((2,), jnp.int32)})
  dense = lambda i, o: i * o + o
  q = dense(784, 200) + dense(200, 200) + dense(200, 2 * 100) + dense(100, 100) + dense(100, 100) + dense(100, 2 * 50)
  p = dense(50, 100) + dense(100, 100) + dense(100, 2 * 100) + dense(100, 200) + dense(200, 200) + dense(200, 784)
  assert sum(x.size for x in jax.tree.leaves(state.params)) == q + p == 521_084


def _np_mlp(params, h):
  """The tanh MLP of vae_dense in numpy: hidden_i with tanh, then `out`."""
  i = 0
  while f"hidden_{i}" in params:
    h = np.tanh(h @ np.asarray(params[f"hidden_{i}"]["kernel"], np.float64) + np.asarray(params[f"hidden_{i}"]["bias"]))
    i += 1
  return h @ np.asarray(params["out"]["kernel"], np.float64) + np.asarray(params["out"]["bias"])


def test_iwae2_log_weight_is_the_two_layer_joint_over_the_proposal():
  """log w of one draw recomputed in float64 numpy from the parameters: log p(x|h1) + log p(h1|h2) + log p(h2)
  - log q(h1|x) - log q(h2|h1), with h1 and h2 drawn through the same noise."""
  from genjax.models import iwae2
  _, state = _iwae2()
  x = (np.asarray(_x()) > 0.5).astype(np.float32)
  prm = jax.tree.map(np.asarray, state.params)
  d1, d2 = IWAE2_SMALL["latents"]
  eps = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (1, 4, d1 + d2)), np.float64)
  mean1, logvar1 = state.apply_fn(state.variables, jnp.asarray(x), method="encode")
  got = np.asarray(iwae2.log_weights(state.apply_fn, state.variables, jnp.asarray(x), mean1, logvar1,
                                     jnp.asarray(eps, jnp.float32)))[0]

  def log_normal(h, m, lv):
    return np.sum(norm.logpdf(h, m, np.exp(0.5 * lv)), axis=-1)

  q1 = _np_mlp(prm["q1"], x.reshape(4, -1).astype(np.float64))
  m1, lv1 = q1[:, :d1], q1[:, d1:]
  h1 = m1 + np.exp(0.5 * lv1) * eps[0, :, :d1]
  q2 = _np_mlp(prm["q2"], h1)
  h2 = q2[:, :d2] + np.exp(0.5 * q2[:, d2:]) * eps[0, :, d1:]
  p1 = _np_mlp(prm["p1"], h2)
  logits = _np_mlp(prm["px"], h1)
  xf = x.reshape(4, -1)
  log_px = np.sum(xf * -np.logaddexp(0, -logits) + (1 - xf) * -np.logaddexp(0, logits), axis=-1)
  want = (log_px + log_normal(h1, p1[:, :d1], p1[:, d1:]) + log_normal(h2, 0.0, 0.0)
          - log_normal(h1, m1, lv1) - log_normal(h2, q2[:, :d2], q2[:, d2:]))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_iwae2_bound_rises_with_k_chunks_exactly_and_stays_above_its_elbo():
  _, state = _iwae2()
  f = MODELS["iwae2"]
  x = (_x() > 0.5).astype(jnp.float32)
  means = []
  bounds = jax.jit(f.likelihood_bounds, static_argnums=4, static_argnames="chunk")
  for k in (1, 30, 300):
    lk, elbo = bounds(state, x, None, jax.random.PRNGKey(1), k)
    # a bound of k draws never falls below the ELBO of the same draws (Jensen), example by example
    assert np.all(np.asarray(lk) >= np.asarray(elbo) - 1e-4)
    means.append(float(jnp.mean(lk)))
  assert means == sorted(means) and means[-1] - means[0] > 5.0, means  # an untrained q is far from the posterior
  whole = lk  # k = 300
  chunked, _ = bounds(state, x, None, jax.random.PRNGKey(1), 300, chunk=64)
  np.testing.assert_allclose(np.asarray(whole), np.asarray(chunked), rtol=1e-5)


def test_iwae2_trains_on_its_bound_and_samples_decodes_and_reconstructs():
  """k = 1 is the VAE (loss = -ELBO of the same draw); training lowers -L_5; the capabilities have the right shapes."""
  f = MODELS["iwae2"]
  batch = {"image": (_x() > 0.5).astype(jnp.float32), "label": jnp.zeros((4,), jnp.int32)}
  c1, state = _iwae2(k=1)
  _, m = jax.jit(functools.partial(f.train_step, **c1.step))(state, batch, jax.random.PRNGKey(0))
  np.testing.assert_allclose(float(m["loss"]), float(m["neg_elbo"]), rtol=1e-6)
  c5, state = _iwae2(k=5)
  step = jax.jit(functools.partial(f.train_step, **c5.step))
  first = None
  for _ in range(30):
    state, m = step(state, batch, jax.random.PRNGKey(0))
    first = float(m["loss"]) if first is None else first
    assert float(m["loss"]) <= float(m["neg_elbo"]) + 1e-3  # -L_k <= -ELBO from the same draws
  assert float(m["loss"]) < first - 25.0, (first, float(m["loss"]))
  assert f.sample(state, jax.random.PRNGKey(1), 3).shape == (3, 28, 28, 1)
  codes = f.encode(state, batch["image"])
  assert codes.shape == (4, IWAE2_SMALL["latents"][1]) and f.decode(state, codes).shape == (4, 28, 28, 1)
  recon = f.reconstruct(state, batch["image"])
  assert recon.shape == (4, 28, 28, 1) and 0.0 <= float(recon.min()) and float(recon.max()) <= 1.0
  per = f.eval_step(state, batch, jax.random.PRNGKey(2))
  assert per["neg_iwae"].shape == per["neg_elbo"].shape == (4,)
  assert float(jnp.mean(per["neg_iwae"])) < float(jnp.mean(per["neg_elbo"]))  # L_50 is the tighter bound


def test_iwae2_refuses_bad_sizes():
  from genjax.errors import UserError
  for key, value, match in (("latents", (100,), "two positive"), ("hidden_top", (100, 0), "hidden_top"),
                            ("activation", "gelu", "activation")):
    c = cfg.model_config("iwae2")
    c.model[key] = value
    with pytest.raises(UserError, match=match):
      MODELS["iwae2"].validate(c)
