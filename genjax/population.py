"""Population training: P independent models, by seed or by a swept step hyperparameter, as one stacked state
trained by `vmap` in one compiled program."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp

from genjax.errors import UserError


def size(config) -> int:
  p = config.get("population", 1)
  if p < 1:
    raise UserError(f"population must be at least 1, got {p}")
  return p


def sweep(config) -> dict[str, list[float]]:
  """`sweep="step.beta=0.5,1,2,4"`: one value per member of a numeric `step` hyperparameter; {} without a sweep."""
  text, p = config.get("sweep", ""), size(config)
  if not text:
    return {}
  if p == 1:
    raise UserError(f"sweep={text!r} needs population > 1 (one value per member)")
  key, sep, values = text.partition("=")
  section, _, name = key.strip().partition(".")
  if not sep or section != "step" or not name:
    raise UserError(f"sweep={text!r} should look like step.<hyperparameter>=v1,v2,...")
  # Floats only: an integer hyperparameter (d_steps, k) shapes the program, which one compile cannot vary.
  if name not in config.step or not isinstance(config.step[name], float):
    raise UserError(f"sweep: step.{name} is not a real-valued hyperparameter of this model "
                    f"(those are {[k for k, v in config.step.items() if isinstance(v, float)]})")
  try:
    out = [float(v) for v in values.split(",")]
  except ValueError:
    raise UserError(f"sweep: values of step.{name} must be numbers, got {values!r}") from None
  if len(out) != p:
    raise UserError(f"sweep: {len(out)} values of step.{name} for a population of {p}")
  return {name: out}


def init(init_fn, rng, p: int):
  """Stacks `p` states initialized from `p` keys split off `rng`."""
  return jax.vmap(init_fn)(jax.random.split(rng, p))


def step(step_fn, p: int, swept: dict[str, list[float]]):
  """A train_step over the stacked state: member i draws from the i-th key split off the step's key and gets its
  swept values; all members see the same batch."""
  values = {k: jnp.asarray(v, jnp.float32) for k, v in swept.items()}

  def population_step(state, batch, rng, **kwargs):  # kwargs: axis_name under shard_map/pmap
    def one(s, key, hp):
      return step_fn(s, batch, key, **hp, **kwargs)
    return jax.vmap(one)(state, jax.random.split(rng, p), values)
  return population_step


def take(tree, i: int):
  """Member i of a stacked state."""
  return jax.tree.map(lambda a: a[i], tree)


def stack(trees):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def member_config(config, i: int, swept: dict[str, list[float]]):
  """The config that trains member i alone (its swept value in `step`): what its run directory records, so
  `make eval` scores it as a run of its own."""
  c = copy.deepcopy(config)
  with c.unlocked():
    c.population, c.sweep = 1, ""
    for name, values in swept.items():
      c.step[name] = values[i]
  return c
