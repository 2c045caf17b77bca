"""Population training: P independent models, by seed or by a swept step hyperparameter, as one stacked state
trained by `vmap` in one compiled program."""

from __future__ import annotations

import copy
import json
import pathlib

import jax
import jax.numpy as jnp

from genjax.errors import UserError


def size(config) -> int:
  p = config.get("population", 1)
  if p < 1:
    raise UserError(f"population must be at least 1, got {p}")
  return p


def sweep(config) -> dict[str, list[float]]:
  """`sweep="step.beta=0.5,1,2,4"` or `"optim.lr=1e-4,3e-4"`: {"step.beta": [one value per member]}; {} without
  a sweep."""
  text, p = config.get("sweep", ""), size(config)
  if not text:
    return {}
  if p == 1:
    raise UserError(f"sweep={text!r} needs population > 1 (one value per member)")
  key, sep, values = text.partition("=")
  key = key.strip()
  section, _, name = key.partition(".")
  if not sep or not (section == "step" and name or key == "optim.lr"):
    raise UserError(f"sweep={text!r} should look like step.<hyperparameter>=v1,v2,... or optim.lr=v1,v2,...")
  # Floats only: an integer hyperparameter (d_steps, k) shapes the program, which one compile cannot vary.
  if section == "step" and (name not in config.step or not isinstance(config.step[name], float)):
    raise UserError(f"sweep: step.{name} is not a real-valued hyperparameter of this model "
                    f"(those are {[k for k, v in config.step.items() if isinstance(v, float)]})")
  o = config.optim
  if key == "optim.lr" and (o.get("schedule", "constant") != "constant" or o.get("warmup_steps", 0)):
    raise UserError("sweep: optim.lr can be swept with a constant schedule only (optim.schedule=constant, "
                    "optim.warmup_steps=0)")
  try:
    out = [float(v) for v in values.split(",")]
  except ValueError:
    raise UserError(f"sweep: values of {key} must be numbers, got {values!r}") from None
  if len(out) != p:
    raise UserError(f"sweep: {len(out)} values of {key} for a population of {p}")
  if key == "optim.lr" and min(out) <= 0:
    raise UserError(f"sweep: every optim.lr must be positive, got {values!r}")
  return {key: out}


def check_layout(workdir, p: int) -> None:
  """A workdir holds one run or one population: refuses to mix them, or to resume a population at another size."""
  workdir = pathlib.Path(workdir)
  info = workdir / "population.json"
  if p == 1 and info.exists():
    raise UserError(f"{workdir} holds a population; train it with its population setting, or use another WORKDIR")
  if p > 1 and any(workdir.glob("checkpoints/[0-9]*")):
    raise UserError(f"{workdir} holds a single run's checkpoints; use another WORKDIR for population={p}")
  if p > 1 and info.exists():
    try:
      old = json.loads(info.read_text())["population"]
    except (ValueError, KeyError) as e:
      raise UserError(f"{info} is unreadable; move the workdir aside or pick another WORKDIR") from e
    if old != p:
      raise UserError(f"{workdir} holds a population of {old}, not {p}; use another WORKDIR")


def init(init_fn, rng, p: int, configs=None):  # init_fn(rng, config=the run's config)
  """Stacks `p` states initialized from `p` keys split off `rng`: by one vmapped init, or, given one config per
  member (an optim.lr sweep), by an init per member whose arrays are stacked under member 0's structure (their
  optimizers differ only in the learning rate, which inject_hyperparams keeps in the state)."""
  keys = jax.random.split(rng, p)
  if configs is None:
    return jax.vmap(init_fn)(keys)
  return stack([init_fn(k, c) for k, c in zip(keys, configs)])


def step(step_fn, p: int, swept: dict[str, list[float]]):
  """A train_step over the stacked state: member i draws from the i-th key split off the step's key and gets its
  swept values; all members see the same batch."""
  values = {k[len("step."):]: jnp.asarray(v, jnp.float32) for k, v in swept.items() if k.startswith("step.")}

  def population_step(state, batch, rng, **kwargs):  # kwargs: axis_name under shard_map/pmap
    def one(s, key, hp):
      return step_fn(s, batch, key, **hp, **kwargs)
    return jax.vmap(one)(state, jax.random.split(rng, p), values)
  return population_step


def take(tree, i: int):
  """Member i of a stacked state."""
  return jax.tree.map(lambda a: a[i], tree)


def stack(trees):
  """One state whose arrays stack those of `trees`, under the first tree's structure: members built from their own
  configs carry different static optimizer closures, so their pytree definitions differ though their arrays match."""
  leaves = [jax.tree.leaves(t) for t in trees]
  return jax.tree.unflatten(jax.tree.structure(trees[0]), [jnp.stack(a) for a in zip(*leaves)])


def member_config(config, i: int, swept: dict[str, list[float]]):
  """The config that trains member i alone (its swept value in `step`): what its run directory records, so
  `make eval` scores it as a run of its own."""
  c = copy.deepcopy(config)
  with c.unlocked():
    c.population, c.sweep = 1, ""
    for key, values in swept.items():
      section, name = key.split(".")
      c[section][name] = values[i]
      if key == "optim.lr":
        c.optim.inject_hyperparams = True
  return c
