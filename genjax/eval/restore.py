"""A run restored from its checkpoints onto the devices this process has, with no training loop involved."""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genjax import checkpoint, data, models
from genjax.errors import UserError


@dataclasses.dataclass
class Run:
  """A restored run: its config, model family and state at `step`."""
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  family: object
  state: object
  step: int
  image_shape: tuple


def replicated():
  """A sharding that puts a whole array on every device of this process (one device: just that device)."""
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _read_config(workdir: pathlib.Path) -> tuple[ml_collections.ConfigDict, tuple]:
  path = workdir / "config.json"
  if not path.exists():
    raise UserError(f"{workdir} is not a training run (no config.json); train one with make train MODEL=<name>")
  try:
    saved = json.loads(path.read_text())
    config = ml_collections.ConfigDict(saved["config"])
    return config, tuple(saved["image_shape"])
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{path} is unreadable ({e}); it was left untouched") from e


def restore_target(family, config, image_shape) -> object:
  """The state's structure with abstract leaves placed on this process's devices: built by tracing `init_state`
  (no initializer runs), so a restore on 1 GPU, 8 TPU cores or a CPU reads the same checkpoint."""
  if family.prepare is not None:  # GMMN+AE: its frozen autoencoder is part of the state
    family = family.prepare(config, data.load(config.data.name, "train", config.data.train_limit).images)
  per_step = family.examples_per_step(config)
  example = {"image": jnp.zeros((per_step, *image_shape), jnp.float32), "label": jnp.zeros((per_step,), jnp.int32)}
  init = functools.partial(family.init_state, config=config, example_batch=example)
  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  sharding = replicated()
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)


def load_run(workdir, step: int | None = None, attempts: int = 5, best: bool = False) -> Run:
  """Restores `step` (default: the latest checkpoint) of the run in `workdir`, or with `best` the best checkpoint
  by train.eval_every's score (checkpoints-best/, named by best.json). A run that is still training may delete the
  latest checkpoint while it is read (`train.max_to_keep`): the newest one is then read again, up to `attempts`
  times."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise UserError(f"no run directory {workdir}")
  config, image_shape = _read_config(workdir)
  family = models.get(config.model.name)
  target = restore_target(family, config, image_shape)
  folder = "checkpoints"
  if best:
    from genjax.eval import during
    record = during.read_best(workdir)
    if record is None:
      raise UserError(f"{workdir} has no best checkpoint: train with --config.train.eval_every=N to keep one")
    folder, step = during.BEST_DIR, record["step"]
  for attempt in range(attempts):
    ckpts, chosen = checkpoint.Checkpoints(workdir / folder), None  # anew: it lists the steps there are now
    try:
      chosen = ckpts.latest_step() if step is None else step
      if chosen is None:
        raise UserError(f"{workdir} has no checkpoint yet; train it first with make train MODEL={config.model.name}")
      state = ckpts.restore(target, chosen)
      return Run(workdir, config, family, state, int(chosen), image_shape)
    except UserError:
      gone = chosen is not None and not (workdir / "checkpoints" / str(chosen)).exists()
      if step is not None or not gone or attempt == attempts - 1:
        raise
    finally:
      ckpts.close()
