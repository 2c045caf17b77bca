"""The model contract: a family is one typed object of pure functions, as optax's GradientTransformation is."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

BLOCKS = ("generator", "conditional", "likelihood", "reconstruction")
# What each evaluation block calls on a family; the contract test checks that a family declaring a block has them.
BLOCK_NEEDS = {"generator": ("sample",), "conditional": ("sample_class",), "likelihood": ("likelihood_bounds",),
               "reconstruction": ("reconstruct",)}


def batch_size(config) -> int:
  """The default `examples_per_step`: one batch of train.batch_size examples per step."""
  return config.train.batch_size


class Family(NamedTuple):
  """A model family: what the loop, the evaluation and the benchmarks may call, and nothing else.

  Always present:
    init_state(rng, config, example_batch) -> state: pure; `example_batch` holds float32 `image` [B, H, W, C] in
      [0, 1] and int32 `label` [B] of B = examples_per_step(config) examples.
    train_step(state, batch, rng, *, <hyperparameters>, axis_name=None) -> (state, metrics): pure; the keyword-only
      parameters are the `step` section of the config; randomness is fold_in(rng, state.step); metrics are scalars.
    eval_step(state, batch, rng, *, <hyperparameters it uses>) -> {name: [B]}: per-example metrics.
    validate(config) -> None: raises UserError for values the family cannot train with.
    examples_per_step(config) -> int: examples one train_step reads (a GAN's discriminator updates read several
      batches).
  Optional capabilities, None where the family lacks them:
    sample(state, rng, n) -> [n, H, W, C] in [0, 1]; sample_class(state, rng, labels [n]) -> the same, one image per
    label; reconstruct(state, x) -> x_hat in [0, 1]; encode(state, x) -> codes and decode(state, codes) -> images
    in [0, 1]; likelihood_bounds(state, x, labels, rng, k, *, chunk=0) -> (L_k [B], ELBO [B]) in nats from the same
    k importance samples; prepare(config, train_images_u8) -> the family ready to init (reads other runs from disk,
    so that init_state can stay pure; None: nothing to prepare); raw_generator(state) -> the state sampling from
    the trained generator itself rather than from its moving average, or None when it keeps no average (GANs:
    make eval --raw_generator).
  blocks: the evaluation blocks (BLOCKS) that apply to the family.
  """
  name: str
  init_state: Callable[..., Any]
  train_step: Callable[..., Any]
  eval_step: Callable[..., Any]
  validate: Callable[[Any], None]
  examples_per_step: Callable[[Any], int] = batch_size
  sample: Callable[..., Any] | None = None
  sample_class: Callable[..., Any] | None = None
  reconstruct: Callable[..., Any] | None = None
  encode: Callable[..., Any] | None = None
  decode: Callable[..., Any] | None = None
  likelihood_bounds: Callable[..., Any] | None = None
  prepare: Callable[..., Any] | None = None
  raw_generator: Callable[..., Any] | None = None
  blocks: tuple[str, ...] = ()

  @property
  def kind(self) -> str:
    """'vae', 'generator' or 'autoencoder': the leaderboard table a run of this family appears in."""
    if "likelihood" in self.blocks:
      return "vae"
    return "generator" if "generator" in self.blocks else "autoencoder"


def hyperparameters(fn) -> list[str]:
  """The keyword-only parameters of a step function but `axis_name`: the `step` config keys it takes."""
  params = inspect.signature(fn).parameters
  return [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "axis_name"]


def bind(fn, step_config):
  """`fn` with the entries of `step_config` that it takes as hyperparameters (a DAE's eval_step: its noise)."""
  accepted = hyperparameters(fn)
  return functools.partial(fn, **{k: v for k, v in step_config.items() if k in accepted})
