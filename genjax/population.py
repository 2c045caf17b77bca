"""Population training: P independent models, by seed or by a swept step hyperparameter, as one stacked state
trained by `vmap` in one compiled program."""

from __future__ import annotations

import copy
import json
import pathlib

import jax
import jax.numpy as jnp

from genjax import config as cfg
from genjax.errors import UserError
from genjax.models.family import Family


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


def step(step_fn, p: int, swept: dict[str, list[float]], name: str = "the model"):
  """A train_step over the stacked state: member i draws from the i-th key split off the step's key and gets its
  swept values; all members see the same batch. `name` is the family's, for the error of an unsweepable value."""
  values = {k[len("step."):]: jnp.asarray(v, jnp.float32) for k, v in swept.items() if k.startswith("step.")}

  def population_step(state, batch, rng, **kwargs):  # kwargs: the other hyperparameters; axis_name
    def one(s, key, hp):
      return step_fn(s, batch, key, **hp, **kwargs)
    try:
      return jax.vmap(one)(state, jax.random.split(rng, p), values)
    except jax.errors.ConcretizationTypeError:  # TracerBoolConversionError too; raised while tracing
      if not swept:
        raise
      raise UserError(f"sweep: {', '.join(swept)} decides the structure of {name}'s step (a Python branch on its "
                      "value), so it cannot vary within one program; train those values as separate runs") from None
  return population_step


def parallel_strategy(config) -> str:
  """The data-parallel strategy of the run: config.parallel, or `none` for a population (one device for now)."""
  strategy, p = config.get("parallel", "auto"), size(config)
  if p == 1:
    return strategy
  if strategy not in ("auto", "none"):
    raise UserError(f"population={p} runs on one device for now; set parallel=none (got {strategy})")
  return "none"


def wrap(family: Family, config) -> Family:
  """A population of size(config) members as an ordinary family over the stacked state: init_state builds every
  member (by seed, or each from its own config for an optim.lr sweep), train_step trains them in one vmapped step
  (`step`). Each member's swept value must be valid on its own. The optional capabilities are the base family's:
  they apply to one member (`take`). The family itself when size(config) is 1."""
  p, swept = size(config), sweep(config)
  if p == 1:
    return family
  members = [member_config(config, i, swept) for i in range(p)]
  for member in members:
    cfg.check(member)
    family.validate(member)
  configs = members if "optim.lr" in swept else None  # the rate lives in each member's optimizer state

  def init_state(rng, config, example_batch):
    return init(lambda k, c=config: family.init_state(k, c, example_batch), rng, p, configs)

  return family._replace(init_state=init_state, train_step=step(family.train_step, p, swept, family.name))


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
