"""What the GAN families share: latent codes, MLP players, minibatch stddev, and one adversarial train step.

The registered families (`gan`, `gan_mlp`, `wgan`, `wgan_gp`, `cgan`) pick networks and losses and pass their
hyperparameters to `train_step` here, which runs `d_steps` discriminator (critic) updates, each on its own real
minibatch, then one generator update. Options that fight mode collapse live here too: separate learning rates
(`optim.lr_g`, `optim.lr_d`), feature matching, historical averaging and minibatch stddev in D. Every GAN can keep
an exponential moving average of its generator (`step.ema_decay`, `step.ema_start`), which then draws the samples,
spectrally normalize its discriminator's layers (`model.spectral_norm`), and draw its samples from truncated latents
(`model.truncation`; training draws untruncated ones).

Conventions: images enter the players in [-1, 1] (the generator ends in tanh); `D(x, y, train)` returns
(logits [B], features [B, F]) where features are the activations the last dense layer reads.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct, traverse_util

from genjax import losses
from genjax.errors import UserError
from genjax.models import nets
from genjax.optim import make_tx
from genjax.state import GANState, TrainState, pmean, step_key

LATENT_DISTS = ("normal", "uniform")


@dataclasses.dataclass(frozen=True)
class Spec:
  """Static settings a GAN's steps and samplers need beyond the parameters."""
  latent_dim: int
  latent_dist: str = "normal"
  num_classes: int = 0  # > 0: both players see the label one-hot (conditional GAN)
  minibatch_std: bool = False  # D's output for one example depends on its batch: score real and fake apart
  truncation: float = 0.0  # > 0: samples are drawn from latents truncated to [-truncation, truncation] (not training)


class AdversarialState(GANState):
  """A GANState with the static `spec` and, in `avg`, what the options keep beside the players' own variables ({}
  when none is on): with historical averaging the running means of both players' parameters, `avg["gen"]` and
  `avg["disc"]`; with a generator EMA its averaged variables, `avg["ema"] = {"params": ..., "batch_stats": ...}`
  (batch_stats {} without BatchNorm); with spectral normalization the power iteration's vector of each of D's
  kernels, `avg["sn"] = {"<layer path>/kernel": u [out features]}`."""
  avg: Any
  spec: Spec = struct.field(pytree_node=False)


def spec_of(config, num_classes: int = 0) -> Spec:
  """The Spec of a GAN config's `model` keys."""
  m = config.model
  return Spec(m.latent_dim, m.get("latent_dist", "normal"), num_classes, m.get("minibatch_std", False),
              float(m.get("truncation", 0.0)))


def latent(rng, n: int, spec: Spec, dtype=jnp.float32):
  """z [n, latent_dim]: N(0, I) for `normal`, U[-1, 1]^d for `uniform`. Training draws these; `sampling_latent`
  draws the samples'."""
  if spec.latent_dist == "normal":
    return jax.random.normal(rng, (n, spec.latent_dim), dtype)
  if spec.latent_dist == "uniform":
    return jax.random.uniform(rng, (n, spec.latent_dim), dtype, -1.0, 1.0)
  raise ValueError(f"unknown latent distribution '{spec.latent_dist}'; expected one of {LATENT_DISTS}")


def sampling_latent(rng, n: int, spec: Spec, dtype=jnp.float32):
  """The latents that samples are drawn from: `latent`'s, or with `spec.truncation` = t > 0 the truncation trick
  (Brock et al. 2019, BigGAN): N(0, I) conditioned on every coordinate lying in [-t, t], which trades the samples'
  variety (recall) for their typicality (precision). A `normal` latent only (validate_common)."""
  if spec.truncation > 0:
    return jax.random.truncated_normal(rng, -spec.truncation, spec.truncation, (n, spec.latent_dim), dtype)
  return latent(rng, n, spec, dtype)


def minibatch_stddev(h):
  """Minibatch standard deviation (Karras et al. 2018): [B, ..., C] -> [B, ..., C + 1]. The new feature is the
  standard deviation over the batch of every feature at every position, sqrt(var_b + 1e-8), averaged into one
  number and given to every example and position; about 0 for a batch of identical examples."""
  s = jnp.mean(jnp.sqrt(jnp.var(h, axis=0) + 1e-8))
  return jnp.concatenate([h, jnp.broadcast_to(s, h.shape[:-1] + (1,)).astype(h.dtype)], axis=-1)


def with_label(h_BxF, y_B, num_classes: int):
  """Appends the one-hot label to flat features when the model is conditional."""
  if not num_classes:
    return h_BxF
  return jnp.concatenate([h_BxF, jax.nn.one_hot(y_B, num_classes, dtype=h_BxF.dtype)], axis=-1)


class MLPGenerator(nn.Module):
  """z -> (Dense, ReLU) per hidden layer -> Dense to H*W*C -> tanh, as [B, H, W, C]. A conditional generator
  appends the one-hot label to the input of every dense layer."""
  shape: tuple
  hidden: tuple = (256, 512)
  num_classes: int = 0

  @nn.compact
  def __call__(self, z_BxD, y_B=None, train: bool = True, axis_name=None):
    del axis_name  # no BatchNorm
    h = z_BxD
    for f in self.hidden:
      h = nn.relu(nets.Dense(f)(with_label(h, y_B, self.num_classes)))
    h = nets.Dense(math.prod(self.shape), name="out")(with_label(h, y_B, self.num_classes))
    return jnp.tanh(h).reshape(z_BxD.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
  """x flattened -> (Dense, LeakyReLU(0.2), dropout) per hidden layer [-> minibatch stddev] -> Dense to one
  logit. Returns (logits [B], features [B, F] of the last hidden layer). A conditional discriminator appends the
  one-hot label to the input of every dense layer and, with `projection`, adds <embed(y), h> to the logit
  (Miyato & Koyama 2018), which makes it judge whether an image fits its label far sooner."""
  hidden: tuple = (512, 256)
  num_classes: int = 0
  minibatch_std: bool = False
  dropout: float = 0.0
  projection: bool = False

  @nn.compact
  def __call__(self, x_BxHxWxC, y_B=None, train: bool = False):
    h = x_BxHxWxC.reshape(x_BxHxWxC.shape[0], -1)
    for f in self.hidden:
      h = nn.leaky_relu(nets.Dense(f)(with_label(h, y_B, self.num_classes)), 0.2)
      if self.dropout > 0:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
    features = h
    if self.minibatch_std:
      h = minibatch_stddev(h)
    logits = nets.Dense(1, name="out")(with_label(h, y_B, self.num_classes))[:, 0]
    if self.num_classes and self.projection:
      logits = logits + jnp.sum(nn.Embed(self.num_classes, h.shape[-1], name="projection")(y_B) * h, axis=-1)
    return logits, features


# --- configs ---------------------------------------------------------------------------------------------------

def validate_common(config) -> None:
  """Checks the model keys every GAN family has and the optional ones it may have."""
  m, s = config.model, config.step
  if m.latent_dim <= 0:
    raise UserError(f"model.latent_dim must be positive, got {m.latent_dim}")
  if m.get("latent_dist", "normal") not in LATENT_DISTS:
    raise UserError(f"model.latent_dist must be one of {LATENT_DISTS}, got '{m.latent_dist}'")
  check_truncation(m.get("truncation", 0.0), m.get("latent_dist", "normal"))
  for key in ("gen_hidden", "disc_hidden", "gen_features", "disc_features"):
    if key in m and (not len(m[key]) or min(m[key]) <= 0):
      raise UserError(f"model.{key} must be a non-empty list of positive sizes, got {tuple(m[key])}")
  if not 0.0 <= m.get("disc_dropout", 0.0) < 1.0:
    raise UserError(f"model.disc_dropout must be in [0, 1), got {m.disc_dropout}")
  if "loss" in s and s.loss not in losses.GAN_LOSSES:
    raise UserError(f"step.loss must be one of {losses.GAN_LOSSES}, got '{s.loss}'")
  for key in ("d_steps", "n_critic"):
    if key in s and s[key] < 1:
      raise UserError(f"step.{key} must be >= 1, got {s[key]}")
  for key in ("historical_averaging", "gp_weight", "ema_start", "r1"):
    if key in s and s[key] < 0:
      raise UserError(f"step.{key} must be >= 0, got {s[key]}")
  if s.get("r1", 0.0) > 0 and m.get("minibatch_std", False):
    raise UserError("step.r1 needs D to score each example on its own: model.minibatch_std must be False")
  if not 0.0 <= s.get("ema_decay", 0.0) < 1.0:
    raise UserError(f"step.ema_decay must be in [0, 1) (0: no generator average), got {s.ema_decay}")
  if s.get("feature_matching", False) and s.get("feature_mmd", False):
    raise UserError("step.feature_matching (the features' mean) and step.feature_mmd (their MMD) are two versions of "
                    "G's loss: set one")
  if "clip" in s and not s.clip > 0:
    raise UserError(f"step.clip must be positive, got {s.clip}")


def check_truncation(truncation: float, latent_dist: str, what: str = "model.truncation") -> None:
  """A truncation is 0 (off) or positive, and truncates a `normal` latent."""
  if truncation < 0:
    raise UserError(f"{what} must be >= 0 (0: no truncation), got {truncation}")
  if truncation > 0 and latent_dist != "normal":
    raise UserError(f"{what} truncates a normal latent; model.latent_dist is '{latent_dist}'")


def examples_per_step(config, key: str = "d_steps") -> int:
  """train.batch_size real images per discriminator update, `step.<key>` updates per step."""
  return config.train.batch_size * config.step.get(key, 1)


def init_mlp_state(rng, config, example_batch, num_classes: int = 0) -> AdversarialState:
  """Builds MLP players from `model.gen_hidden`, `model.disc_hidden`, `model.disc_dropout` and the spec keys."""
  x, m = example_batch["image"], config.model
  spec = spec_of(config, num_classes)
  gen = MLPGenerator(tuple(x.shape[1:]), tuple(m.gen_hidden), num_classes)
  disc = MLPDiscriminator(tuple(m.disc_hidden), num_classes, spec.minibatch_std, m.get("disc_dropout", 0.0),
                         m.get("projection", False))
  return make_state(rng, config, gen, disc, x, spec)


def make_state(rng, config, gen: nn.Module, disc: nn.Module, example_x, spec: Spec) -> AdversarialState:
  """Initializes both players; optimizers from `optim` with `optim.lr_g` / `optim.lr_d` (absent or 0: `optim.lr`);
  critic weights clipped to [-step.clip, step.clip] when clipping is on; running means when
  step.historical_averaging > 0; the generator's average, starting at its initial variables, when
  step.ema_decay > 0; the power iteration's vectors when model.spectral_norm."""
  o, s = config.optim, config.step
  k_g, k_d = jax.random.split(rng)
  y = jnp.zeros((1,), jnp.int32) if spec.num_classes else None
  g_vars = gen.init(k_g, jnp.zeros((1, spec.latent_dim), example_x.dtype), y, train=False)
  d_vars = disc.init(k_d, example_x[:1], y)
  if s.get("clip", 0.0) > 0:
    d_vars = {**d_vars, "params": clip_params(d_vars["params"], s.clip)}
  g = TrainState.create(apply_fn=gen.apply, variables=g_vars, tx=make_tx(o, o.get("lr_g", 0.0) or o.lr))
  d = TrainState.create(apply_fn=disc.apply, variables=d_vars, tx=make_tx(o, o.get("lr_d", 0.0) or o.lr))
  # Copies: a state must not hold one buffer twice, or the loop could not donate it.
  avg = jax.tree.map(jnp.copy, {"gen": g.params, "disc": d.params}) if s.get("historical_averaging", 0.0) > 0 else {}
  if s.get("ema_decay", 0.0) > 0:
    avg["ema"] = jax.tree.map(jnp.copy, {"params": g.params, "batch_stats": g.batch_stats})
  if config.model.get("spectral_norm", False):
    avg["sn"] = spectral_init(jax.random.fold_in(k_d, 1), d.params)
  return AdversarialState(step=jnp.zeros((), jnp.int32), gen=g, disc=d, avg=avg, spec=spec)


# --- steps -----------------------------------------------------------------------------------------------------

def clip_params(params, c: float):
  """WGAN's weight clipping: every parameter into [-c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


def running_mean(avg, params, count):
  """avg + (params - avg) / count: the mean of `count` values when `avg` held the first count - 1."""
  return jax.tree.map(lambda a, p: a + (p - a) / count.astype(a.dtype), avg, params)


def ema_update(ema, new, decay: float, start: int, count):
  """decay * ema + (1 - decay) * new, leaf by leaf, once `count` (the generator updates done, this one included)
  exceeds `start`; until then the average is `new` itself, so it starts from the trained generator rather than the
  random one it was initialized from."""
  d = jnp.where(count > start, decay, 0.0)
  return jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), ema, new)


def sampling_variables(state: AdversarialState) -> dict:
  """The generator's variables that draw samples: its EMA when the state keeps one, else its own."""
  return state.gen.replace(**state.avg["ema"]).variables if "ema" in state.avg else state.gen.variables


def raw_generator(state: AdversarialState) -> AdversarialState | None:
  """The state with its generator EMA set aside, so that samples come from the trained generator itself (make eval
  --raw_generator); None when it keeps no average. Not for training: the step expects the average it was
  configured with."""
  if "ema" not in state.avg:
    return None
  return state.replace(avg={k: v for k, v in state.avg.items() if k != "ema"})


def _kernels(params) -> dict:
  """{"path/kernel": W} for every weight matrix or conv kernel of a parameter tree (biases, embeddings left out)."""
  return {"/".join(k): v for k, v in traverse_util.flatten_dict(params).items() if k[-1] == "kernel"}


def _as_matrix(w):
  """A kernel as the matrix [fan-in, out] that spectral normalization bounds (a conv's [kh, kw, cin] flattened)."""
  return w.astype(jnp.float32).reshape(-1, w.shape[-1])


def _l2_normalize(v, eps: float = 1e-12):
  return v / (jnp.linalg.norm(v) + eps)


def spectral_init(rng, params) -> dict:
  """A random unit vector u [out features] per kernel: the power iteration's start (Miyato et al. 2018)."""
  return {name: _l2_normalize(jax.random.normal(jax.random.fold_in(rng, i), (w.shape[-1],), jnp.float32))
          for i, (name, w) in enumerate(sorted(_kernels(params).items()))}


def power_iteration(params, us: dict, n: int = 1) -> dict:
  """`n` rounds of the power iteration per kernel W, read as a matrix [fan-in, out] (a conv kernel's [kh, kw, cin]
  flattened): v = W u / |W u|, u = W^T v / |W^T v|. No gradient flows through the vectors."""
  kernels = _kernels(jax.lax.stop_gradient(params))
  out = {}
  for name, u in us.items():
    w = _as_matrix(kernels[name])
    for _ in range(n):
      v = _l2_normalize(w @ u)
      u = _l2_normalize(w.T @ v)
    out[name] = u
  return out


def spectral_normalize(params, us: dict):
  """Every kernel W divided by its top singular value's estimate sigma = v^T W u = |W u|, v = W u / |W u|, with u
  (and v) held constant in the gradient, as in Miyato et al. (2018): W / sigma(W)."""
  flat = traverse_util.flatten_dict(params)
  for key in flat:
    name = "/".join(key)
    if name in us:
      w = flat[key]
      w2 = _as_matrix(w)
      v = jax.lax.stop_gradient(_l2_normalize(w2 @ us[name]))
      sigma = v @ (w2 @ us[name])
      flat[key] = (w / sigma).astype(w.dtype)
  return traverse_util.unflatten_dict(flat)


def _disc_params(params, sn):
  """D's parameters as its layers use them: spectrally normalized with the vectors `sn` when those are kept."""
  return params if sn is None else spectral_normalize(params, sn)


def _labels(state: AdversarialState, y):
  return y if state.spec.num_classes else None


def _generate_train(gen: TrainState, params, z, y, axis_name=None):
  """G(z) in training mode: BatchNorm (if any) uses batch statistics (over `axis_name` too, under shard_map/pmap)
  and returns updated running averages."""
  x, updates = gen.apply_fn({**gen.variables, "params": params}, z, y, train=True, axis_name=axis_name,
                            mutable=["batch_stats"])
  return x, updates.get("batch_stats", {})


def _disc(disc: TrainState, params, x, y, rng):
  """D's (logits, features) in training mode (dropout on)."""
  return disc.apply_fn({"params": params}, x, y, train=True, rngs={"dropout": rng})


def _scores(state, disc, params, real, fake, y, rng):
  """D's logits and features on a real and a fake batch. Without minibatch statistics one call on both halves
  equals two calls; with them, each batch must be scored on its own."""
  if state.spec.minibatch_std:
    return _disc(disc, params, real, y, rng), _disc(disc, params, fake, y, jax.random.fold_in(rng, 1))
  yy = None if y is None else jnp.concatenate([y, y])
  logits, feats = _disc(disc, params, jnp.concatenate([real, fake]), yy, rng)
  b = real.shape[0]
  return (logits[:b], feats[:b]), (logits[b:], feats[b:])


def _d_update(state, disc, avg_d, sn, x, y, key, *, loss, clip, gp_weight, r1, historical_averaging, axis_name):
  """One update of D on real minibatch `x` against as many fresh fakes; returns (disc, avg_d, sn, metrics). With
  spectral normalization (`sn`, the vectors; None without) one power iteration first, then the loss of the
  normalized layers."""
  wasserstein = loss == "wasserstein"
  fake, _ = _generate_train(state.gen, state.gen.params, latent(key, x.shape[0], state.spec, x.dtype), y,
                            axis_name)
  fake = jax.lax.stop_gradient(fake)
  k_drop, k_gp = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
  if sn is not None:
    sn = power_iteration(disc.params, sn)

  def loss_fn(raw):
    params = _disc_params(raw, sn)
    (real_logits, _), (fake_logits, _) = _scores(state, disc, params, x, fake, y, k_drop)
    if wasserstein:
      adv = jnp.mean(losses.critic_loss(real_logits, fake_logits))
    else:
      adv = jnp.mean(losses.discriminator_loss(real_logits, fake_logits, loss))
    total, aux = adv, {"d_loss": adv}
    if gp_weight > 0:
      gp = jnp.mean(losses.gradient_penalty(lambda v: _disc(disc, params, v, y, k_drop)[0], x, fake, k_gp))
      total, aux["gp"] = total + gp_weight * gp, gp
    if r1 > 0:
      penalty = jnp.mean(losses.r1_penalty(lambda v: _disc(disc, params, v, y, k_drop)[0], x))
      total, aux["r1"] = total + 0.5 * r1 * penalty, penalty
    if historical_averaging > 0:
      ha = losses.historical_average_penalty(raw, avg_d)
      total, aux["d_hist"] = total + historical_averaging * ha, ha
    if wasserstein:
      aux.update(critic_real=jnp.mean(real_logits), critic_fake=jnp.mean(fake_logits),
                 w_estimate=jnp.mean(real_logits) - jnp.mean(fake_logits))
    else:
      aux.update(d_real=jnp.mean(jax.nn.sigmoid(real_logits)), d_fake=jnp.mean(jax.nn.sigmoid(fake_logits)))
    return total, aux

  (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
  disc = disc.apply_gradients(pmean(grads, axis_name))
  if clip > 0:
    disc = disc.replace(params=clip_params(disc.params, clip))
  if historical_averaging > 0:  # disc.step updates done: the mean of the disc.step + 1 parameter values so far
    avg_d = running_mean(avg_d, disc.params, disc.step + 1)
  return disc, avg_d, sn, metrics


def split_minibatches(x, n: int):
  """[B, ...] -> [n, B // n, ...]: n disjoint minibatches of consecutive examples (the last B mod n are left out).
  A batch of fewer than n examples (tiny test batches; the loop gathers batch_size x n) is reused cyclically, one
  example per minibatch."""
  b = x.shape[0]
  if b < n:
    return x[jnp.arange(n) % b][:, None]
  m = b // n
  return x[:n * m].reshape(n, m, *x.shape[1:])


def train_step(state: AdversarialState, batch, rng, *, loss: str = "non_saturating", d_steps: int = 1,
               feature_matching: bool = False, historical_averaging: float = 0.0, clip: float = 0.0,
               gp_weight: float = 0.0, r1: float = 0.0, ema_decay: float = 0.0, ema_start: int = 0,
               feature_mmd: bool = False, axis_name=None):
  """`d_steps` updates of D, each on its own B // d_steps real images and as many fresh fakes, then one update of
  G on B // d_steps fakes against the new D.

  loss: one of losses.GAN_LOSSES, or "wasserstein" (critic loss D(G(z)) - D(x), generator loss -D(G(z))).
  clip > 0: clip D's weights to [-clip, clip] after each update (WGAN). gp_weight > 0: add gp_weight times the
  gradient penalty (WGAN-GP). r1 = gamma > 0: add gamma / 2 times the mean R1 penalty ||grad_x D(x)||^2 at the
  real images (Mescheder et al. 2018). feature_matching: G minimizes ||E f(x) - E f(G(z))||^2 on D's last hidden
  features (the first real minibatch) instead of its adversarial loss; feature_mmd: G minimizes the unbiased MMD^2
  between those features of the real minibatch and of its fakes instead (losses.feature_mmd), which matches their
  distribution, not only their mean. historical_averaging = w > 0: each player adds
  w ||theta - mean of its past theta||^2. ema_decay = a > 0: after the generator's update, its parameters and
  BatchNorm statistics enter their exponential moving average, ema <- a ema + (1 - a) theta, from generator update
  ema_start on (before it the average is theta itself); `sample`, `decode`, the pictures and `make eval` draw from
  the average. Metrics: D's are means over its d_steps updates; `fake_std` and
  `real_std` are the per-pixel standard deviations over the batch in [0, 1] units, averaged over pixels (a
  collapsed generator has fake_std far below real_std).
  """
  rng = step_key(rng, state.step, axis_name)
  if historical_averaging > 0 and "gen" not in state.avg:
    raise ValueError("step.historical_averaging > 0 needs a state built with it (the running means)")
  if ema_decay > 0 and "ema" not in state.avg:
    raise ValueError("step.ema_decay > 0 needs a state built with it (the generator's average)")
  k_d, k_g = jax.random.split(rng)
  x_SxB = split_minibatches(batch["image"] * 2.0 - 1.0, d_steps)  # the generator's tanh range
  if "label" not in batch and state.spec.num_classes:
    raise ValueError("a conditional GAN needs batch['label']")
  y_SxB = split_minibatches(batch.get("label", jnp.zeros(batch["image"].shape[:1], jnp.int32)), d_steps)
  m = x_SxB.shape[1]
  gen, disc = state.gen, state.disc
  avg_g, avg_d, sn = state.avg.get("gen"), state.avg.get("disc"), state.avg.get("sn")

  d_metrics = []
  for i in range(d_steps):  # unrolled: XLA:CPU runs conv weight gradients far slower inside loops
    key = k_d if d_steps == 1 else jax.random.fold_in(k_d, i)
    disc, avg_d, sn, met = _d_update(state, disc, avg_d, sn, x_SxB[i], _labels(state, y_SxB[i]), key, loss=loss,
                                 clip=clip, gp_weight=gp_weight, r1=r1, historical_averaging=historical_averaging,
                                 axis_name=axis_name)
    d_metrics.append(met)

  x, y = x_SxB[0], _labels(state, y_SxB[0])
  k_drop = jax.random.fold_in(k_g, 1)
  d_params = _disc_params(disc.params, sn)

  def g_loss_fn(params):
    fake, batch_stats = _generate_train(gen, params, latent(k_g, m, state.spec, x.dtype), y, axis_name)
    logits, fake_feats = _disc(disc, d_params, fake, y, k_drop)
    if feature_matching or feature_mmd:
      _, real_feats = _disc(disc, d_params, x, y, jax.random.fold_in(k_drop, 1))
      g = (losses.feature_mmd if feature_mmd else losses.feature_matching)(real_feats, fake_feats)
    elif loss == "wasserstein":
      g = jnp.mean(losses.wasserstein_generator_loss(logits))
    else:
      g = jnp.mean(losses.generator_loss(logits, loss))
    aux = {"g_loss": g}
    if historical_averaging > 0:
      ha = losses.historical_average_penalty(params, avg_g)
      g, aux["g_hist"] = g + historical_averaging * ha, ha
    return g, (batch_stats, fake, aux)

  (_, (batch_stats, fake, g_metrics)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(gen.params)
  gen = gen.apply_gradients(pmean(g_grads, axis_name), batch_stats=pmean(batch_stats, axis_name))
  avg = state.avg  # unchanged (or {}) without historical averaging, EMA and spectral normalization
  if sn is not None:
    avg = {**avg, "sn": sn}
  if historical_averaging > 0:
    avg = {**avg, "gen": running_mean(avg_g, gen.params, gen.step + 1), "disc": avg_d}
  if ema_decay > 0:
    avg = {**avg, "ema": ema_update(avg["ema"], {"params": gen.params, "batch_stats": gen.batch_stats}, ema_decay,
                                    ema_start, gen.step)}

  metrics = jax.tree.map(lambda *v: jnp.mean(jnp.stack(v)), *d_metrics)
  metrics.update(g_metrics, fake_std=0.5 * jnp.mean(jnp.std(fake, axis=0)),
                 real_std=0.5 * jnp.mean(jnp.std(x, axis=0)))
  return state.replace(step=state.step + 1, gen=gen, disc=disc, avg=avg), pmean(metrics, axis_name)


def adversarial_train_step(state: AdversarialState, batch, rng, *, loss: str = "non_saturating", d_steps: int = 1,
                           feature_matching: bool = False, historical_averaging: float = 0.0, r1: float = 0.0,
                           ema_decay: float = 0.0, ema_start: int = 0, feature_mmd: bool = False, axis_name=None):
  """The `train_step` of `gan`, `gan_mlp` and `cgan`: `d_steps` discriminator updates on distinct real minibatches,
  then one generator update (see `train_step`). Its keywords are the hyperparameters those families accept in
  `step`; a conditional GAN generates its fakes with the labels of the real minibatch they are scored beside."""
  return train_step(state, batch, rng, loss=loss, d_steps=d_steps, feature_matching=feature_matching,
                    historical_averaging=historical_averaging, r1=r1, ema_decay=ema_decay, ema_start=ema_start,
                    feature_mmd=feature_mmd, axis_name=axis_name)


# --- evaluation and sampling -----------------------------------------------------------------------------------

def generate(state: AdversarialState, rng, n: int, labels=None):
  """n images in [-1, 1] from the sampling generator (its EMA when kept: `sampling_variables`) and the sampling
  latents (`sampling_latent`: truncated when `spec.truncation` > 0), BatchNorm (if any) on running averages;
  `labels` [n] for a conditional GAN."""
  z = sampling_latent(rng, n, state.spec)
  return state.gen.apply_fn(sampling_variables(state), z, _labels(state, labels), train=False)


def decode(state: AdversarialState, z, labels=None):
  """G(z) in [0, 1] for given latents z [n, latent_dim] (interpolation, latent arithmetic), from the sampling
  generator."""
  return (state.gen.apply_fn(sampling_variables(state), z, _labels(state, labels), train=False) + 1.0) * 0.5


def _eval_scores(state, batch, rng):
  x = batch["image"] * 2.0 - 1.0
  y = _labels(state, batch.get("label"))
  fake = generate(state, rng, x.shape[0], y)
  d = {"params": _disc_params(state.disc.params, state.avg.get("sn"))}
  real_logits, _ = state.disc.apply_fn(d, x, y)
  fake_logits, _ = state.disc.apply_fn(d, fake, y)
  return real_logits, fake_logits


def eval_step(state: AdversarialState, batch, rng):
  """Per-example non-saturating D and G losses and D's probabilities on real and on generated images, each [B]
  (a conditional GAN generates with the batch's labels)."""
  real_logits, fake_logits = _eval_scores(state, batch, rng)
  return {"d_loss": losses.discriminator_loss(real_logits, fake_logits),
          "g_loss": losses.generator_loss(fake_logits), "d_real": jax.nn.sigmoid(real_logits),
          "d_fake": jax.nn.sigmoid(fake_logits)}


def eval_step_wasserstein(state: AdversarialState, batch, rng):
  """Per-example critic scores of real and generated images, and their difference D(x) - D(G(z)), whose mean
  is the critic's Wasserstein-1 estimate; each [B]."""
  real_logits, fake_logits = _eval_scores(state, batch, rng)
  return {"critic_real": real_logits, "critic_fake": fake_logits, "w_estimate": real_logits - fake_logits}


def sample(state: AdversarialState, rng, n: int):
  """n images in [0, 1]; a conditional GAN draws labels 0, 1, ..., num_classes - 1, 0, 1, ... in turn."""
  labels = jnp.arange(n, dtype=jnp.int32) % state.spec.num_classes if state.spec.num_classes else None
  return (generate(state, rng, n, labels) + 1.0) * 0.5
