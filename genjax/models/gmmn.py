"""Generative moment matching network (Li, Swersky & Zemel 2015): an MLP generator G(u), u ~ uniform[-1, 1]^d or
N(0, I), trained by minimizing the unbiased MMD^2 (`genjax.mmd`) between a generated batch and a real batch under a
mixture of Gaussian kernels. No discriminator: the kernel two-sample statistic is the whole loss.

With `model.ae_workdir` set (GMMN+AE) the generator works in the code space of a pretrained autoencoder read from a
genjax workdir: real batches are encoded by the frozen AE, generated codes are compared with them, and `sample`
decodes generated codes. Codes are centered and divided by one scale (the root mean variance over code dimensions,
from the first 10000 training images), so the kernel bandwidths mean the same whatever the AE's code magnitude and
the isotropic kernel still sees the code space's geometry; Li et al. likewise use much smaller bandwidths in code
space than in pixel space (experiments/gmmn_ae.py uses 1 to 16 code-space standard deviations).
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from genjax import checkpoint, mmd
from genjax.errors import UserError
from genjax.models import nets
from genjax.models.family import Family
from genjax.optim import make_tx
from genjax.state import TrainState, pmean, step_key

NOISE = ("uniform", "gaussian")
CODE_STATS_EXAMPLES = 10000


class Generator(nn.Module):
  """u -> ReLU dense layers -> one output per pixel (sigmoid) or per code dimension (linear)."""
  out_shape: tuple
  hidden: tuple = (64, 256, 256, 1024)
  sigmoid: bool = True

  @nn.compact
  def __call__(self, u_BxD):
    h = u_BxD
    for i, f in enumerate(self.hidden):
      h = nn.relu(nets.Dense(f, name=f"hidden_{i}")(h))
    out = nets.Dense(math.prod(self.out_shape), name="out")(h)
    out = jax.nn.sigmoid(out) if self.sigmoid else out
    return out.reshape(u_BxD.shape[0], *self.out_shape)


class GMMNState(struct.PyTreeNode):
  """The trained generator, and in code space the frozen autoencoder (optimizer state dropped) and code scaling."""
  gen: TrainState
  ae: Any = None  # the AE family's TrainState; its arrays are checkpointed but never receive gradients
  code_shift: Any = None  # mean code [*code_shape]
  code_scale: Any = None  # scalar: codes enter the MMD as (h - code_shift) / code_scale
  noise: str = struct.field(pytree_node=False, default="uniform")
  ae_name: str = struct.field(pytree_node=False, default="")

  @property
  def step(self):
    return self.gen.step


def _hint(name: str) -> str:
  return f"run `make train MODEL={name}` first, or point model.ae_workdir at a trained autoencoder's workdir"


def check_ae_workdir(workdir) -> tuple[str, dict]:
  """The AE's registry name and config.json contents, or a one-line UserError when it has no checkpoint."""
  from genjax import models  # the registry imports this module
  workdir = pathlib.Path(workdir)
  path = workdir / "config.json"
  # `make train MODEL=x` writes runs/x: suggest the model the directory is named after, else ae_dense.
  default = workdir.name if workdir.name in models.MODELS and workdir.name != "gmmn" else "ae_dense"
  if not path.is_file():
    raise UserError(f"model.ae_workdir={workdir} holds no trained autoencoder (no config.json); {_hint(default)}")
  try:
    info = json.loads(path.read_text())
    name = info["config"]["model"]["name"]
  except (ValueError, KeyError) as e:
    raise UserError(f"{path} is unreadable; {_hint(default)}") from e
  if not any((workdir / "checkpoints").glob("[0-9]*")):
    raise UserError(f"model.ae_workdir={workdir} has no checkpoint; {_hint(name)}")
  family = models.get(name)
  if family.encode is None or family.decode is None:
    raise UserError(f"model.ae_workdir={workdir} holds a '{name}' model, which lacks encode/decode; "
                    f"{_hint('ae_dense')}")
  return name, info


def load_autoencoder(workdir, image_shape):
  """(name, AE TrainState restored from the latest checkpoint without its optimizer state)."""
  name, info = check_ae_workdir(workdir)
  if tuple(info.get("image_shape", image_shape)) != tuple(image_shape):
    raise UserError(f"model.ae_workdir={workdir} was trained on images {tuple(info['image_shape'])}, "
                    f"but this data has {tuple(image_shape)}")
  from genjax import models
  ae_config = ml_collections.ConfigDict(info["config"])
  example = {"image": jnp.zeros((1, *image_shape), jnp.float32), "label": jnp.zeros((1,), jnp.int32)}
  state = models.get(name).init_state(jax.random.PRNGKey(0), ae_config, example)
  ckpts = checkpoint.Checkpoints(pathlib.Path(workdir) / "checkpoints")
  try:
    state = ckpts.restore(state, ckpts.latest_step())
  finally:
    ckpts.close()
  return name, state.replace(opt_state=())


def _code_stats(family, ae, images_u8):
  """Mean code and the root mean variance over code dimensions, from the first CODE_STATS_EXAMPLES images."""
  images = images_u8[:CODE_STATS_EXAMPLES]
  encode = jax.jit(family.encode)
  codes = np.concatenate([np.asarray(encode(ae, jnp.asarray(images[i:i + 500], jnp.float32) / 255.0))
                          for i in range(0, len(images), 500)])
  shift = codes.mean(axis=0)
  scale = float(np.sqrt(np.mean(codes.var(axis=0))))
  return jnp.asarray(shift), jnp.asarray(max(scale, 1e-6), jnp.float32)


def validate(config) -> None:
  m, s = config.model, config.step
  if m.noise not in NOISE:
    raise UserError(f"model.noise must be one of {NOISE}, got '{m.noise}'")
  if m.noise_dim <= 0:
    raise UserError(f"model.noise_dim must be positive, got {m.noise_dim}")
  if any(f <= 0 for f in m.hidden):
    raise UserError(f"model.hidden must hold positive layer sizes, got {tuple(m.hidden)}")
  if not s.bandwidths or any(not b > 0 for b in s.bandwidths):
    raise UserError(f"step.bandwidths must be a non-empty list of positive numbers, got {tuple(s.bandwidths)}")
  if config.train.batch_size < 2:
    raise UserError("the unbiased MMD needs train.batch_size >= 2")
  if m.ae_workdir:
    check_ae_workdir(m.ae_workdir)


def init_state(rng, config, example_batch, frozen=None) -> GMMNState:
  """The generator, and for GMMN+AE the `frozen` autoencoder part that `prepare` loads (ae, code_shift,
  code_scale, ae_name)."""
  m = config.model
  x = example_batch["image"]
  if m.ae_workdir and frozen is None:
    raise ValueError("GMMN+AE (model.ae_workdir set) initializes through gmmn.prepare(config, train_images), "
                     "which loads its frozen autoencoder")
  out_shape = tuple(frozen["code_shift"].shape) if frozen else tuple(x.shape[1:])
  gen = Generator(out_shape, tuple(m.hidden), sigmoid=not m.ae_workdir)
  variables = gen.init(rng, jnp.zeros((1, m.noise_dim), x.dtype))
  return GMMNState(gen=TrainState.create(apply_fn=gen.apply, variables=variables, tx=make_tx(config.optim)),
                   noise=m.noise, **(frozen or {}))


def prepare(config, train_images_u8) -> Family:
  """The family ready to initialize: for GMMN+AE, with the autoencoder of model.ae_workdir restored (no optimizer
  state) and its code statistics from the first CODE_STATS_EXAMPLES training images bound into init_state; for a
  pixel-space GMMN, the family as it is."""
  if not config.model.ae_workdir:
    return FAMILY._replace(prepare=None)
  from genjax import models
  ae_name, ae = load_autoencoder(config.model.ae_workdir, train_images_u8.shape[1:])
  shift, scale = _code_stats(models.get(ae_name), ae, train_images_u8)
  frozen = {"ae": ae, "code_shift": shift, "code_scale": scale, "ae_name": ae_name}
  return FAMILY._replace(init_state=functools.partial(init_state, frozen=frozen), prepare=None)


def noise_dim(state: GMMNState) -> int:
  first = state.gen.params["hidden_0" if "hidden_0" in state.gen.params else "out"]
  return first["kernel"].shape[0]


def draw_noise(state: GMMNState, rng, n: int):
  """u ~ uniform[-1, 1]^d or N(0, I), [n, d]."""
  shape = (n, noise_dim(state))
  if state.noise == "gaussian":
    return jax.random.normal(rng, shape)
  return jax.random.uniform(rng, shape, minval=-1.0, maxval=1.0)


def _ae_family(state: GMMNState):
  from genjax import models
  return models.get(state.ae_name)


def to_space(state: GMMNState, x):
  """Where the MMD is taken: images themselves, or their scaled AE codes (no gradient flows into the AE)."""
  if state.ae is None:
    return x
  h = _ae_family(state).encode(state.ae, x)
  return jax.lax.stop_gradient((h - state.code_shift) / state.code_scale)


def generate(state: GMMNState, rng, n: int, params=None):
  """n generator outputs: images in [0, 1], or scaled codes in GMMN+AE."""
  params = state.gen.params if params is None else params
  return state.gen.apply_fn({"params": params}, draw_noise(state, rng, n))


def train_step(state: GMMNState, batch, rng, *, bandwidths: tuple = mmd.BANDWIDTHS, axis_name=None):
  """One Adam step on MMD^2_u(G(u_1..u_B), x_1..x_B) with k(x, y) = sum_s exp(-||x - y||^2 / (2 s^2))."""
  rng = step_key(rng, state.step, axis_name)
  target = to_space(state, batch["image"])
  u = draw_noise(state, rng, target.shape[0])

  def loss_fn(params):
    fake = state.gen.apply_fn({"params": params}, u)
    return mmd.mmd2_unbiased(fake, target, tuple(bandwidths))

  loss, grads = jax.value_and_grad(loss_fn)(state.gen.params)
  gen = state.gen.apply_gradients(pmean(grads, axis_name))
  return state.replace(gen=gen), pmean({"loss": loss}, axis_name)


def eval_step(state: GMMNState, batch, rng):
  """Per-example `mmd2` [B]: the share of sample i and real image i in the unbiased MMD^2 between B samples and the
  batch, in pixel space with the paper's bandwidths (also for GMMN+AE, so the two compare); the mean over a batch
  is that batch's MMD^2_u (`genjax.mmd.mmd2_unbiased_per_example`)."""
  x = batch["image"]
  return {"mmd2": mmd.mmd2_unbiased_per_example(sample(state, rng, x.shape[0]), x)}


def sample(state: GMMNState, rng, n: int):
  """n images in [0, 1]: G(u), or the AE's decoding of the unscaled generated codes."""
  out = generate(state, rng, n)
  if state.ae is None:
    return out
  return _ae_family(state).decode(state.ae, out * state.code_scale + state.code_shift)


FAMILY = Family("gmmn", init_state, train_step, eval_step, validate, sample=sample, prepare=prepare,
                blocks=("generator",))
