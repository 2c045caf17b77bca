"""The GAN catalogue: Wasserstein losses, gradient penalty, clipping, critic minibatches, mode-collapse remedies."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

from genjax import config as cfg
from genjax import losses, train
from genjax.errors import UserError
from genjax.models import MODELS, gan, gans

B = 8
# These tests check algebra on tiny players: XLA's cheapest compilation keeps them fast (about 3x less compile time).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                   "xla_llvm_disable_expensive_passes": True})


def _config(name, **model):
  c = cfg.model_config(name)
  if "gen_hidden" in c.model:  # small players: these tests check the algebra, not the capacity
    c.model.gen_hidden, c.model.disc_hidden = (32,), (32,)
  for k, v in model.items():
    c.model[k] = v
  return c


def _batch(n=B, seed=0):
  x = jax.random.uniform(jax.random.PRNGKey(seed), (n, 28, 28, 1))
  return {"image": x, "label": jnp.arange(n, dtype=jnp.int32) % 10}


def _init(name, config, batch):
  return _jit(lambda k: MODELS[name].init_state(k, config, batch))(jax.random.PRNGKey(1))


def _max_change(a, b):
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- Wasserstein losses and the gradient penalty ---------------------------------------------------------------

def test_critic_loss_sign():
  real, fake = jnp.array([3.0, -1.0]), jnp.array([1.0, 2.0])
  np.testing.assert_allclose(losses.critic_loss(real, fake), [-2.0, 3.0])  # D(G(z)) - D(x)
  np.testing.assert_allclose(losses.wasserstein_generator_loss(fake), [-1.0, -2.0])
  # descending the critic loss raises D(x) and lowers D(G(z))
  g_real, g_fake = jax.grad(lambda r, f: jnp.sum(losses.critic_loss(r, f)), argnums=(0, 1))(real, fake)
  assert np.all(g_real < 0) and np.all(g_fake > 0)


def test_gradient_penalty_norm_is_per_example_over_h_w_c():
  # D(x)_i = s_i sum(w * x_i): example i's gradient is s_i w, so its penalty is (|s_i| ||w|| - 1)^2. A norm over
  # the whole batch, or over channels only, gives other values.
  rng = np.random.default_rng(0)
  w = rng.normal(size=(5, 5, 3)).astype(np.float32) * 0.1
  s = np.array([0.5, 1.0, 3.0, -2.0], np.float32)
  critic = lambda x: jnp.asarray(s) * jnp.sum(x * w, axis=(1, 2, 3))
  real, fake = [rng.uniform(size=(4, 5, 5, 3)).astype(np.float32) for _ in range(2)]
  gp = _jit(losses.gradient_penalty, static_argnums=0)(critic, real, fake, jax.random.PRNGKey(0))
  np.testing.assert_allclose(gp, (np.abs(s) * np.linalg.norm(w) - 1.0) ** 2, rtol=1e-4)


def test_interpolates_draw_one_eps_per_example():
  b = 6
  real = jnp.ones((b, 4, 4, 2)) * jnp.arange(1.0, b + 1.0)[:, None, None, None]
  fake = jnp.zeros_like(real)
  x_hat, eps = losses.interpolate(real, fake, jax.random.PRNGKey(3))
  assert eps.shape == (b,) and np.all((eps >= 0) & (eps <= 1)) and len(np.unique(np.asarray(eps))) == b
  np.testing.assert_allclose(x_hat, eps[:, None, None, None] * real, rtol=1e-6)  # constant within an example
  # D(x) = 1/2 ||x||^2 has gradient x_hat, so the penalty sees each example's own eps
  gp = losses.gradient_penalty(lambda x: 0.5 * jnp.sum(x * x, axis=(1, 2, 3)), real, fake, jax.random.PRNGKey(3))
  norms = np.asarray(eps) * np.arange(1.0, b + 1.0) * np.sqrt(32.0)
  np.testing.assert_allclose(gp, (norms - 1.0) ** 2, rtol=1e-4)


def test_wgan_gp_rejects_minibatch_statistics():
  c = _config("wgan_gp")
  with c.unlocked():
    c.model.minibatch_std = True
  with pytest.raises(UserError, match="minibatch_std"):
    MODELS["wgan_gp"].validate(c)


# --- WGAN: clipping, critic direction, distinct minibatches ----------------------------------------------------

def test_wgan_clipping_keeps_critic_weights_in_range():
  c = _config("wgan")
  c.optim.lr = 0.05  # steps far larger than the clip range
  batch = _batch(5 * B)
  state = _init("wgan", c, batch)
  clip = c.step.clip
  leaves = lambda s: np.concatenate([np.ravel(a) for a in jax.tree.leaves(s.disc.params)])
  assert np.all(np.abs(leaves(state)) <= clip)
  step = functools.partial(MODELS["wgan"].train_step, n_critic=1, clip=clip)  # as the loop passes step.clip
  new, _ = _jit(step)(state, batch, jax.random.PRNGKey(0))
  # RMSProp's first step moves every weight with a gradient by 10 lr = 0.5, fifty times the clip range
  w = leaves(new)
  assert np.all(np.abs(w) <= clip) and np.mean(np.abs(w) == clip) > 0.5
  assert np.mean(np.sign(w) != np.sign(leaves(state))) > 0.1  # the step did move weights across the box


def test_critic_learns_to_score_real_above_fake():
  # Two critic updates with a frozen generator must raise E[D(x)] - E[D(G(z))] on held-out data; a flipped sign
  # would lower it.
  c = _config("wgan_gp")
  c.optim.lr_d, c.optim.lr_g = 1e-3, 1e-12
  batch = _batch(2 * B)
  state = _init("wgan_gp", c, batch)
  new, m = _jit(functools.partial(MODELS["wgan_gp"].train_step, n_critic=2))(state, batch, jax.random.PRNGKey(0))
  held_out = _batch(64, seed=7)
  evaluate = _jit(MODELS["wgan_gp"].eval_step)
  w = lambda s: float(jnp.mean(evaluate(s, held_out, jax.random.PRNGKey(9))["w_estimate"]))
  assert w(new) > w(state) + 0.3
  assert float(m["gp"]) > 0 and np.isfinite(float(m["gp"]))
  np.testing.assert_allclose(m["w_estimate"], -m["d_loss"], rtol=1e-5, atol=1e-7)  # d_loss: the adversarial part


def test_critic_updates_use_distinct_real_minibatches(monkeypatch):
  seen = []

  def spy(state, disc, avg_d, sn, x, *args, **kwargs):  # records the real minibatch and leaves the critic as it is
    jax.debug.callback(lambda v: seen.append(np.asarray(v)), x, ordered=True)
    return disc, avg_d, sn, {}

  monkeypatch.setattr(gans, "_d_update", spy)
  c = _config("wgan")
  batch = _batch(2 * 4 + 1)  # 2 updates of 4 examples; the last one is left out
  state = _init("wgan", c, batch)
  jax.block_until_ready(_jit(functools.partial(MODELS["wgan"].train_step, n_critic=2))(
      state, batch, jax.random.PRNGKey(0)))
  x = np.asarray(batch["image"]) * 2.0 - 1.0
  assert len(seen) == 2
  for i, xi in enumerate(seen):
    np.testing.assert_array_equal(xi, x[4 * i:4 * (i + 1)])
  # a batch smaller than the number of updates (tiny test batches only) is reused cyclically
  np.testing.assert_array_equal(gans.split_minibatches(jnp.arange(3), 5), [[0], [1], [2], [0], [1]])


class _Gathered(Exception):
  pass


def test_loop_gathers_batch_size_times_critic_updates(tmp_path, monkeypatch):
  # The loop builds the state from, and gathers each step, batch_size x n_critic examples; stop before compiling.
  seen = {}

  def gather(*args):
    seen["per_step"] = args[3]
    raise _Gathered

  init = MODELS["wgan"].init_state

  def init_state(rng, config, example):
    seen["example"] = example["image"].shape[0]
    return init(rng, config, example)

  monkeypatch.setitem(MODELS, "wgan", MODELS["wgan"]._replace(init_state=init_state))
  monkeypatch.setattr(train.data, "batch_indices", gather)
  c = small_config("wgan")
  c.model.gen_hidden, c.model.disc_hidden = (32,), (32,)
  c.step.n_critic = 3
  with pytest.raises(_Gathered):
    train.train(c, tmp_path, quiet=True)
  assert seen == {"example": 32 * 3, "per_step": 32 * 3}
  c.train.batch_size = 200  # 600 examples per step > 512
  with pytest.raises(UserError, match=r"train.batch_size=200 x 3 updates per step is larger than the 512"):
    train.train(c, tmp_path / "other", quiet=True)


# --- mode-collapse remedies ------------------------------------------------------------------------------------

def test_feature_matching_matches_formula():
  rng = np.random.default_rng(1)
  r, f = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
  np.testing.assert_allclose(losses.feature_matching(r, f), np.sum((r.mean(0) - f.mean(0)) ** 2), rtol=1e-5)
  assert float(losses.feature_matching(r, r[::-1])) < 1e-10  # same mean, any order


@pytest.mark.parametrize("option,loss", [("feature_matching", losses.feature_matching),
                                         ("feature_mmd", losses.feature_mmd)])
def test_a_feature_loss_step_minimizes_that_loss(option, loss):
  c = _config("gan_mlp")
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  rng = jax.random.PRNGKey(0)
  step = functools.partial(MODELS["gan_mlp"].train_step, **{option: True})
  new, m = _jit(step)(state, batch, rng)
  # G's loss: the formula on the updated D's features of the real batch and of G(z), z from the step's G key
  k_g = jax.random.split(jax.random.fold_in(rng, 0))[1]
  fake = gans.generate(state, k_g, B)
  feats = lambda x: new.disc.apply_fn(new.disc.variables, x)[1]
  expected = loss(feats(batch["image"] * 2 - 1), feats(fake))
  np.testing.assert_allclose(m["g_loss"], expected, rtol=1e-4)
  assert _max_change(state.gen.params, new.gen.params) > 0


def test_feature_matching_and_feature_mmd_are_one_or_the_other():
  c = _config("gan_mlp")
  c.step.feature_matching = c.step.feature_mmd = True
  with pytest.raises(UserError, match="set one"):
    MODELS["gan_mlp"].validate(c)


def test_feature_mmd_is_the_unbiased_mmd_of_median_scaled_features_and_sees_a_collapse_the_mean_misses():
  from genjax import mmd
  rng = np.random.default_rng(2)
  r, f = rng.normal(size=(16, 5)).astype(np.float32), rng.normal(size=(16, 5)).astype(np.float32) + 0.5
  d2 = ((r[:, None] - r[None]) ** 2).sum(-1)
  scale = np.sqrt(np.median(d2[np.triu_indices(16, 1)]))
  expected = mmd.mmd2_unbiased(r / scale, f / scale, losses.FEATURE_MMD_BANDWIDTHS)
  np.testing.assert_allclose(losses.feature_mmd(r, f), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.feature_mmd(10 * r, 10 * f), losses.feature_mmd(r, f), rtol=1e-4)  # scale-free
  # Two modes at +-1 and a generator collapsed onto their mean: the mean matches exactly, the distribution does not.
  modes = np.repeat(np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32), 32, axis=0) + 0.05 * rng.normal(size=(64, 2))
  collapsed = 0.05 * rng.normal(size=(64, 2)).astype(np.float32)
  collapsed -= collapsed.mean(0) - modes.mean(0)
  assert float(losses.feature_matching(modes, collapsed)) < 1e-10
  assert float(losses.feature_mmd(modes, collapsed)) > 0.2
  same = modes[rng.permutation(64)] + 0.05 * rng.normal(size=(64, 2))  # the same two modes, drawn again
  assert abs(float(losses.feature_mmd(modes, same))) < 0.1 * float(losses.feature_mmd(modes, collapsed))


def test_minibatch_stddev_feature():
  same = jnp.ones((4, 3, 3, 2)) * 0.7
  out = gans.minibatch_stddev(same)
  assert out.shape == (4, 3, 3, 3)
  np.testing.assert_array_equal(out[..., :2], same)
  np.testing.assert_allclose(out[..., 2], 0.0, atol=1e-3)  # sqrt(0 + 1e-8)
  h = np.random.default_rng(2).normal(size=(5, 7)).astype(np.float32)
  np.testing.assert_allclose(gans.minibatch_stddev(jnp.asarray(h))[:, -1], np.mean(np.std(h, axis=0)), rtol=1e-4)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_minibatch_std_makes_d_see_the_batch(kind):
  x = _batch()["image"] * 2 - 1
  other = x.at[1:].set(-x[1:])  # example 0 unchanged, the rest changed
  for on in (False, True):
    d = gans.MLPDiscriminator((16,), minibatch_std=on) if kind == "mlp" else gan.Discriminator((4, 8), on)
    variables = _jit(d.init)(jax.random.PRNGKey(0), x)
    logit = _jit(lambda v, d=d, variables=variables: d.apply(variables, v)[0][0])
    assert (abs(float(logit(x)) - float(logit(other))) > 1e-6) == on


def test_historical_average_penalty_and_running_mean():
  p = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array([[3.0]])}}
  avg = {"a": jnp.array([0.0, 0.0]), "b": {"c": jnp.array([[1.0]])}}
  np.testing.assert_allclose(losses.historical_average_penalty(p, avg), 1 + 4 + 4)
  c = _config("gan_mlp")
  c.step.historical_averaging = 0.1
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  step = _jit(functools.partial(MODELS["gan_mlp"].train_step, **c.step))
  history = [state]
  for i in range(3):
    state, m = step(state, batch, jax.random.PRNGKey(i))
    history.append(state)
  for half in ("gen", "disc"):
    mean = jax.tree.map(lambda *v: np.mean(np.stack(v), axis=0), *[getattr(s, half).params for s in history])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), state.avg[half], mean)
  # the logged penalty is ||theta - avg||^2 at the parameters the last step started from
  prev = history[-2]
  np.testing.assert_allclose(m["g_hist"], losses.historical_average_penalty(prev.gen.params, prev.avg["gen"]),
                             rtol=1e-4)
  np.testing.assert_allclose(m["d_hist"], losses.historical_average_penalty(prev.disc.params, prev.avg["disc"]),
                             rtol=1e-4)
  assert float(m["g_hist"]) > 0


def test_separate_learning_rates():
  c = _config("gan_mlp")
  c.optim.lr = 3e-4
  assert c.optim.lr_g == c.optim.lr_d == 3e-4  # they follow optim.lr unless set
  c.optim.lr_g, c.optim.lr_d = 1e-9, 1e-3
  cfg.check(c)
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  new, _ = _jit(functools.partial(MODELS["gan_mlp"].train_step, **c.step))(state, batch, jax.random.PRNGKey(0))
  assert _max_change(state.gen.params, new.gen.params) < 1e-8  # Adam moves each weight by about lr_g
  assert _max_change(state.disc.params, new.disc.params) > 1e-4


def test_uniform_latent_is_in_range():
  z = gans.latent(jax.random.PRNGKey(0), 4096, gans.Spec(8, "uniform"))
  assert z.shape == (4096, 8) and float(z.min()) >= -1 and float(z.max()) <= 1
  assert float(z.min()) < -0.99 and float(z.max()) > 0.99 and abs(float(z.mean())) < 0.02
  assert float(jnp.max(jnp.abs(gans.latent(jax.random.PRNGKey(0), 4096, gans.Spec(8, "normal"))))) > 2
  c = _config("gan_mlp", latent_dist="uniform")
  state = _init("gan_mlp", c, _batch())
  assert state.spec.latent_dist == "uniform"
  with pytest.raises(UserError, match="latent_dist"):
    MODELS["gan_mlp"].validate(_config("gan_mlp", latent_dist="cauchy"))


def test_truncated_sampling_latents_lie_within_the_bound_and_training_draws_untruncated_ones():
  """model.truncation t: the samples' latents are N(0, I) conditioned on [-t, t] (each coordinate's variance is that
  of a truncated normal, 1 - 2 t phi(t) / (2 Phi(t) - 1)), the training step's stay N(0, I): a step of a state with
  the truncation is the step of one without. 0 samples from N(0, I)."""
  t = 1.5
  z = gans.sampling_latent(jax.random.PRNGKey(0), 20000, gans.Spec(8, truncation=t))
  assert float(jnp.max(jnp.abs(z))) <= t and float(jnp.max(jnp.abs(z))) > 0.99 * t
  phi, cdf = np.exp(-t * t / 2) / np.sqrt(2 * np.pi), 0.5 * (1 + math.erf(t / np.sqrt(2)))
  np.testing.assert_allclose(float(jnp.var(z)), 1 - 2 * t * phi / (2 * cdf - 1), rtol=0.02)
  np.testing.assert_array_equal(gans.sampling_latent(jax.random.PRNGKey(0), 64, gans.Spec(8)),
                                gans.latent(jax.random.PRNGKey(0), 64, gans.Spec(8)))
  c = _config("gan_mlp", truncation=t)
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  assert state.spec.truncation == t
  plain = state.replace(spec=gans.Spec(state.spec.latent_dim))
  key = jax.random.PRNGKey(2)
  step = _jit(MODELS["gan_mlp"].train_step)
  jax.tree.map(np.testing.assert_array_equal, step(state, batch, key)[0].gen.params,
               step(plain, batch, key)[0].gen.params)
  truncated, untruncated = (MODELS["gan_mlp"].sample(s, key, 16) for s in (state, plain))
  assert float(jnp.max(jnp.abs(truncated - untruncated))) > 1e-4  # the samples differ


@pytest.mark.parametrize("model,match", [({"truncation": -1.0}, "must be >= 0"),
                                         ({"truncation": 1.0, "latent_dist": "uniform"}, "truncates a normal latent")])
def test_validate_rejects_a_bad_truncation(model, match):
  with pytest.raises(UserError, match=match):
    MODELS["gan"].validate(_config("gan", **model))


def test_cgan_samples_follow_the_label():
  family = MODELS["cgan"]
  batch = _batch()
  state = _init("cgan", _config("cgan"), batch)
  rng = jax.random.PRNGKey(4)
  sample_class = _jit(family.sample_class)
  zeros, ones = (sample_class(state, rng, jnp.full((12,), k)) for k in (0, 1))
  assert float(jnp.max(jnp.abs(zeros - ones))) > 1e-3
  np.testing.assert_allclose(_jit(family.sample, static_argnums=2)(state, rng, 12),
                             sample_class(state, rng, jnp.arange(12) % 10), rtol=1e-6)


@pytest.mark.parametrize("loss", losses.GAN_LOSSES)
def test_each_gan_mlp_loss_gives_a_finite_step(loss):
  c = _config("gan_mlp")
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  new, m = _jit(functools.partial(MODELS["gan_mlp"].train_step, loss=loss))(state, batch, jax.random.PRNGKey(0))
  assert all(np.isfinite(float(v)) for v in m.values())
  assert _max_change(state.gen.params, new.gen.params) > 0 and _max_change(state.disc.params, new.disc.params) > 0


def test_all_remedies_together_on_cgan():
  c = _config("cgan", minibatch_std=True, latent_dist="uniform", disc_dropout=0.3)
  c.step.d_steps, c.step.feature_matching, c.step.historical_averaging = 2, True, 0.01
  MODELS["cgan"].validate(c)
  batch = _batch(2 * B)
  state = _init("cgan", c, batch)
  new, m = _jit(functools.partial(MODELS["cgan"].train_step, **c.step))(state, batch, jax.random.PRNGKey(0))
  assert all(np.isfinite(float(v)) for v in m.values())
  assert int(new.disc.step) == 2 and int(new.gen.step) == 1


@pytest.mark.parametrize("key,value,match", [("step.d_steps", 0, "d_steps"), ("step.loss", "wgan", "step.loss"),
                                             ("model.latent_dim", 0, "latent_dim"),
                                             ("step.historical_averaging", -1.0, "historical_averaging")])
def test_validate_rejects_bad_values(key, value, match):
  c = _config("gan_mlp")
  section, leaf = key.split(".")
  c[section][leaf] = value
  with pytest.raises(UserError, match=match):
    MODELS["gan_mlp"].validate(c)


def test_wgan_validate_rejects_no_clipping():
  w = _config("wgan")
  w.step.clip = 0.0
  with pytest.raises(UserError, match="clip"):
    MODELS["wgan"].validate(w)


# --- the generator's exponential moving average ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["gan", "gan_mlp", pytest.param("wgan", marks=pytest.mark.slow)])
def test_generator_ema_follows_its_formula(name):
  """ema <- a ema + (1 - a) theta after each generator update, from update ema_start on; until then the average is
  the generator itself. The DCGAN's BatchNorm statistics are averaged with its parameters."""
  c = _config(name)
  c.step.ema_decay, c.step.ema_start = 0.9, 1
  batch = _batch(B * MODELS[name].examples_per_step(c) // c.train.batch_size)
  state = _init(name, c, batch)
  assert state.avg["ema"]["params"] is not state.gen.params
  chex_equal = functools.partial(jax.tree.map, lambda a, b: np.testing.assert_array_equal(a, b))
  chex_equal(state.avg["ema"]["params"], state.gen.params)  # starts at the initial generator
  step = _jit(functools.partial(MODELS[name].train_step, **c.step))
  state, _ = step(state, batch, jax.random.PRNGKey(0))  # update 1: not past ema_start, the average is theta_1
  chex_equal(state.avg["ema"], {"params": state.gen.params, "batch_stats": state.gen.batch_stats})
  expected = state.avg["ema"]
  for i in range(1, 3):  # updates 2 and 3: averaged
    state, _ = step(state, batch, jax.random.PRNGKey(i))
    now = {"params": state.gen.params, "batch_stats": state.gen.batch_stats}
    expected = jax.tree.map(lambda e, p: 0.9 * np.asarray(e, np.float64) + 0.1 * np.asarray(p, np.float64),
                            expected, now)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), state.avg["ema"], expected)
  assert _max_change(state.avg["ema"]["params"], state.gen.params) > 1e-6  # it lags the generator
  if name == "gan":
    assert jax.tree.leaves(state.avg["ema"]["batch_stats"])  # BatchNorm's running statistics averaged too


def test_samples_come_from_the_average_and_raw_generator_sets_it_aside():
  c = _config("gan_mlp")
  c.step.ema_decay = 0.99
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  # an average far from the generator: its samples are the average's, and raw_generator gives the generator's own
  ema_params = jax.tree.map(lambda p: p * 0.5, state.gen.params)
  state = state.replace(avg={**state.avg, "ema": {"params": ema_params, "batch_stats": {}}})
  key = jax.random.PRNGKey(3)
  z = gans.latent(key, 4, state.spec)
  from_ema = (state.gen.apply_fn({"params": ema_params}, z, None, train=False) + 1) / 2
  from_gen = (state.gen.apply_fn(state.gen.variables, z, None, train=False) + 1) / 2
  np.testing.assert_allclose(MODELS["gan_mlp"].sample(state, key, 4), from_ema, rtol=1e-6)
  np.testing.assert_allclose(gans.decode(state, z), from_ema, rtol=1e-6)  # the DCGAN's decode
  raw = MODELS["gan_mlp"].raw_generator(state)
  np.testing.assert_allclose(MODELS["gan_mlp"].sample(raw, key, 4), from_gen, rtol=1e-6)
  assert float(jnp.max(jnp.abs(from_ema - from_gen))) > 1e-3
  assert "ema" in state.avg and "ema" not in raw.avg  # the state itself is untouched
  assert MODELS["gan_mlp"].raw_generator(raw) is None  # nothing to set aside


@pytest.mark.parametrize("key,value", [("ema_decay", 1.0), ("ema_decay", -0.1), ("ema_start", -1)])
def test_validate_rejects_a_bad_ema(key, value):
  c = _config("gan")
  c.step[key] = value
  with pytest.raises(UserError, match=f"step.{key}"):
    MODELS["gan"].validate(c)


def test_a_state_with_both_averages_can_be_donated():
  """The averages start as copies: the loop donates the state to each dispatch, and a state holding one buffer
  twice cannot be donated ('Attempt to donate the same buffer twice', which `make train` with historical averaging
  met before)."""
  c = _config("gan_mlp")
  c.step.historical_averaging, c.step.ema_decay = 0.01, 0.9
  state = MODELS["gan_mlp"].init_state(jax.random.PRNGKey(0), c, _batch())
  buffers = [id(x) for x in jax.tree.leaves(state)]
  assert len(buffers) == len(set(buffers))
  donated = jax.jit(lambda s: jax.tree.map(lambda v: v + 0, s), donate_argnums=0)(state)
  assert jax.tree.structure(donated) == jax.tree.structure(state)


# --- spectral normalization ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gan", "gan_mlp"])
def test_spectral_norm_brings_every_kernels_top_singular_value_to_one(name):
  """After the power iterations, each normalized kernel (conv kernels read as [kh kw cin, cout]) has its largest
  singular value within 1e-2 of 1, by numpy.linalg.svd."""
  c = _config(name, spectral_norm=True)
  state = _init(name, c, _batch())
  us = state.avg["sn"]
  params = jax.tree.map(lambda w: 3.0 * w, state.disc.params)  # top singular values well away from 1
  kernels = gans._kernels(params)
  assert set(us) == set(kernels) and len(us) == len(c.model.get("disc_features", c.model.get("disc_hidden"))) + 1
  us = gans.power_iteration(params, us, n=100)
  normalized = gans._kernels(gans.spectral_normalize(params, us))
  for path, w in normalized.items():
    top = np.linalg.svd(np.asarray(w).reshape(-1, w.shape[-1]), compute_uv=False)[0]
    raw = np.linalg.svd(np.asarray(kernels[path]).reshape(-1, w.shape[-1]), compute_uv=False)[0]
    assert abs(top - 1) < 1e-2 and abs(raw - 1) > 0.05, (path, top, raw)


def test_spectral_norm_gradient_holds_the_vectors_constant():
  """d sigma / dW = v u^T (Miyato et al. 2018, eq. 12's premise): u and v carry no gradient."""
  w = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  u = gans._l2_normalize(jax.random.normal(jax.random.PRNGKey(1), (3,)))
  params = {"d": {"kernel": w}}
  sigma = lambda p: jnp.sum(p["d"]["kernel"]) / jnp.sum(gans.spectral_normalize(p, {"d/kernel": u})["d"]["kernel"])
  g = jax.grad(sigma)(params)["d"]["kernel"]
  v = gans._l2_normalize(w @ u)
  np.testing.assert_allclose(g, np.outer(v, u), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["gan", pytest.param("wgan_gp", marks=pytest.mark.slow)])
def test_a_spectrally_normalized_discriminator_trains_and_is_saved(name, tmp_path):
  from conftest import arrays

  from genjax import checkpoint
  c = _config(name, spectral_norm=True)
  c.step.ema_decay = 0.95  # the generator average is saved beside the vectors
  if name == "gan":
    c.step.historical_averaging = 0.01  # and the running means: every entry of `avg` in one checkpoint
  MODELS[name].validate(c)
  batch = _batch(B * MODELS[name].examples_per_step(c) // c.train.batch_size)
  state = _init(name, c, batch)
  step = _jit(functools.partial(MODELS[name].train_step, **c.step))
  first = state.avg["sn"]
  for i in range(3):
    state, m = step(state, batch, jax.random.PRNGKey(i))
  assert all(np.isfinite(float(v)) for v in m.values())
  assert _max_change(first, state.avg["sn"]) > 1e-3  # one power iteration per D update
  for u in state.avg["sn"].values():
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-5)
  ck = checkpoint.Checkpoints(tmp_path / "ck")
  ck.save(3, state)
  ck.wait()
  restored = ck.restore(_init(name, c, batch))
  ck.close()
  assert set(restored.avg) == ({"sn", "ema", "gen", "disc"} if name == "gan" else {"sn", "ema"})
  jax.tree.map(np.testing.assert_array_equal, arrays(restored), arrays(state))
  # without it the parameter tree is what it was: old checkpoints restore
  plain = _init(name, _config(name), batch)
  assert "sn" not in plain.avg
  assert jax.tree.structure(plain.disc.params) == jax.tree.structure(state.disc.params)


# --- the R1 penalty ----------------------------------------------------------------------------------------------

def test_r1_penalty_is_the_squared_gradient_norm_of_each_real_example():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 3, 2, 1))
  w = jax.random.normal(jax.random.PRNGKey(1), (6,))
  linear = lambda v: v.reshape(v.shape[0], -1) @ w  # grad_x D = w for every example
  np.testing.assert_allclose(losses.r1_penalty(linear, x), np.full(4, float(w @ w)), rtol=1e-5)
  square = lambda v: jnp.sum(v.reshape(v.shape[0], -1) ** 2, axis=1)  # grad = 2x: one value per example
  np.testing.assert_allclose(losses.r1_penalty(square, x), 4 * np.sum(np.asarray(x).reshape(4, -1) ** 2, axis=1),
                             rtol=1e-5)


def test_r1_enters_the_discriminator_loss_with_half_its_weight():
  c = _config("gan_mlp")
  batch = _batch()
  state = _init("gan_mlp", c, batch)
  c.step.r1 = 10.0
  MODELS["gan_mlp"].validate(c)
  _, m = _jit(functools.partial(MODELS["gan_mlp"].train_step, **c.step))(state, batch, jax.random.PRNGKey(0))
  c.step.r1 = 0.0
  _, plain = _jit(functools.partial(MODELS["gan_mlp"].train_step, **c.step))(state, batch, jax.random.PRNGKey(0))
  assert float(m["r1"]) > 0 and "r1" not in plain
  np.testing.assert_allclose(m["d_loss"], plain["d_loss"], rtol=1e-6)  # d_loss is the adversarial part alone
  c.step.r1, c.model.minibatch_std = 10.0, True
  with pytest.raises(UserError, match="step.r1 needs D to score each example on its own"):
    MODELS["gan_mlp"].validate(c)
