"""Configs: each model's default (`genjax/configs/<name>.py`), a config file of your own, command-line overrides
and validation.

`model_config("vae")` imports `genjax.configs.vae` and returns its `get_config()`, so it works from an installed
package and from any working directory; `load("my_vae.py")` runs `get_config()` from a file; `get(text)` is
`--config`'s rule: a path (ending in .py or holding a /) is a file, anything else a config's name.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import os
import pathlib
import pkgutil

import ml_collections

from genjax.errors import UserError
from genjax.xla import CPU_YNN, DEFAULT_YNN, ynn_of  # the values of the top-level `xla_cpu_ynn`

SECTIONS = ("model", "data", "optim", "step", "train")
DTYPES = ("float32", "bfloat16")  # the top-level `dtype`: compute dtypes (state.compute_in)
MATMUL_PRECISIONS = ("default", "high", "highest")
PACKAGE = "genjax.configs"  # the default configs, one module per model plus named variants (gmmn_ae)


def names() -> list[str]:
  """The configs in genjax.configs: one per model (its name) and named variants such as gmmn_ae."""
  package = importlib.import_module(PACKAGE)
  return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def model_config(name: str) -> ml_collections.ConfigDict:
  """The default config of model `name`, or of a named variant (`gmmn_ae`): `genjax.configs.<name>.get_config()`."""
  known = names()
  if name not in known:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"no config named '{name}' in {PACKAGE}{hint}; available: {', '.join(known)}")
  module = importlib.import_module(f"{PACKAGE}.{name}")
  return _checked(module.get_config(), f"{PACKAGE}.{name}")


def load(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """Runs `get_config()` from a config file of your own (`--config my_gan.py`)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f"no config file at {path}")
  spec = importlib.util.spec_from_file_location(f"genjax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return _checked(module.get_config(), str(path))


def get(spec: str | os.PathLike) -> ml_collections.ConfigDict:
  """`--config`'s value: a file (a Path, or text ending in .py or holding a path separator) or a config's name."""
  text = os.fspath(spec)
  if isinstance(spec, os.PathLike) or text.endswith(".py") or "/" in text or os.sep in text:
    return load(spec)
  return model_config(text)


def _checked(config: ml_collections.ConfigDict, origin: str) -> ml_collections.ConfigDict:
  """Checks `config` has the five sections and locks it: adding a key that does not exist becomes an error."""
  missing = [s for s in SECTIONS if s not in config]
  if missing:
    raise UserError(f"{origin} lacks config sections {missing}")
  config.lock()
  return config


def _keys(config, prefix=""):
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      yield from _keys(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}"


def _parse(key: str, text: str, old):
  """Converts `text` to the type of the value it replaces, or raises UserError."""
  kind = type(old).__name__
  try:
    if isinstance(old, bool):
      low = text.lower()
      if low not in ("true", "false", "1", "0"):
        raise ValueError
      return low in ("true", "1")
    if isinstance(old, int):
      return int(text)
    if isinstance(old, float):
      return float(text)
    if isinstance(old, str):
      return text
    if isinstance(old, (tuple, list)):
      value = ast.literal_eval(text)
      if not isinstance(value, (tuple, list)):
        value = (value,)
      return type(old)(value)
    if old is None:
      try:
        return ast.literal_eval(text)
      except (ValueError, SyntaxError):
        return text
  except (ValueError, SyntaxError):
    pass
  raise UserError(f"config key '{key}' expects {kind}, got {text!r}")


def _leaf(config: ml_collections.ConfigDict, key: str, known: list[str]):
  """(the section holding `key`, its last name), or a UserError naming the closest known key."""
  if key not in known:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"unknown config key '{key}'{hint}")
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  return node, leaf


def override(config: ml_collections.ConfigDict, assignments: dict[str, str]) -> None:
  """Applies `{"train.steps": "100"}`-style overrides (text, as on the command line) in place, each converted to the
  type of the value it replaces; unknown keys and unparsable values are UserErrors."""
  known = list(_keys(config))
  for key, text in assignments.items():
    node, leaf = _leaf(config, key, known)
    node[leaf] = _parse(key, text, node[leaf])


def assign(config: ml_collections.ConfigDict, values: dict) -> None:
  """Sets `{"step.loss": "mse"}`-style Python values in place; unknown keys and values of another type (an int
  for a float is fine) are UserErrors."""
  known = list(_keys(config))
  for key, value in values.items():
    node, leaf = _leaf(config, key, known)
    try:
      node[leaf] = value
    except TypeError as e:
      raise UserError(f"config key '{key}' expects {type(node[leaf]).__name__}, got {value!r}") from e


def parse_overrides(args: list[str]) -> dict[str, str]:
  """Turns `--config.a.b=v` arguments into `{"a.b": "v"}`."""
  out = {}
  for arg in args:
    if not arg.startswith("--config.") or "=" not in arg:
      raise UserError(f"unrecognized argument {arg!r}; overrides look like --config.train.steps=100")
    key, value = arg[len("--config."):].split("=", 1)
    out[key] = value
  return out


def check(config: ml_collections.ConfigDict) -> None:
  """Rejects hyperparameters that cannot be right, whatever the model."""
  t, o = config.train, config.optim
  for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
    if t[name] <= 0:
      raise UserError(f"train.{name} must be positive, got {t[name]}")
  for name in [k for k in o.keys() if k == "lr" or k.startswith("lr_")]:
    if not o[name] > 0:
      raise UserError(f"optim.{name} must be positive, got {o[name]}")
  if config.get("dtype", "float32") not in DTYPES:
    raise UserError(f"dtype must be {' or '.join(DTYPES)}, got '{config.dtype}'")
  if ynn_of(config) not in CPU_YNN:
    raise UserError(f"xla_cpu_ynn must be one of {', '.join(CPU_YNN)}, got '{config.xla_cpu_ynn}'")
  if t.get("steps_per_dispatch", 0) < 0:
    raise UserError("train.steps_per_dispatch must be 0 (auto) or positive")
  if config.get("matmul_precision", "default") not in MATMUL_PRECISIONS:
    raise UserError(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got "
                    f"'{config.matmul_precision}'")
  if o.get("schedule", "constant") not in ("constant", "cosine", "burda"):
    raise UserError(f"optim.schedule must be constant, cosine or burda, got '{o.schedule}'")
  if o.get("schedule", "constant") == "cosine" and not o.get("decay_steps", 0) > o.get("warmup_steps", 0):
    raise UserError(f"optim.schedule=cosine needs optim.decay_steps (the step where the rate reaches 0) above "
                    f"optim.warmup_steps, got {o.get('decay_steps', 0)}")
  if o.get("decay_start", 0) and not 0 < o.decay_start < o.get("decay_steps", 0):
    raise UserError(f"optim.decay_start (where the cosine begins) must lie before optim.decay_steps "
                    f"({o.get('decay_steps', 0)}), got {o.decay_start}")
  if o.get("schedule", "constant") == "burda" and not o.get("epoch_steps", 0) > 0:
    raise UserError("optim.schedule=burda needs optim.epoch_steps, the steps of one epoch (training examples / batch)")
  if t.get("eval_every", 0) < 0:
    raise UserError(f"train.eval_every must be 0 (off) or positive, got {t.eval_every}")
  if t.get("eval_every", 0) and config.get("population", 1) > 1:
    raise UserError("train.eval_every is not available for populations yet: evaluate the members with make eval")
  if t.get("resume_step", 0) < 0:
    raise UserError(f"train.resume_step must be 0 (the newest checkpoint) or a saved step, got {t.resume_step}")


def to_dict(config) -> dict:
  return config.to_dict()


def base() -> ml_collections.ConfigDict:
  """The sections and keys every config has; a model's config fills `model`, `step` and its own defaults."""
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict({"name": ""})
  c.data = ml_collections.ConfigDict({"name": "mnist", "train_limit": 0})
  c.optim = ml_collections.ConfigDict({"name": "adam", "lr": 1e-3, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0,
                                       "grad_clip": 0.0, "schedule": "constant", "warmup_steps": 0,
                                       "decay_steps": 0, "decay_start": 0,
                                       # the learning rate as part of the optimizer state (set for lr sweeps)
                                       "inject_hyperparams": False})
  c.step = ml_collections.ConfigDict()
  # Scale-out (docs/scaling.md): data-parallel strategy, multi-process runtime, population, compute dtype.
  c.parallel = "auto"  # auto | none | jit | shard_map | pmap; auto is jit on several accelerators, else none
  c.distributed = False  # jax.distributed.initialize (SLURM / TPU auto-detected, else GENJAX_COORDINATOR etc.)
  c.dtype = "float32"  # compute dtype: float32 | bfloat16 (parameters and optimizer state stay float32)
  # float32 matmuls and convs on accelerators (jax.default_matmul_precision): default is the backend's (TF32 on
  # NVIDIA GPUs since Ampere, one bfloat16 pass on TPUs), high about float32's accuracy in fewer passes, highest
  # float32 itself. CPUs compute float32 whatever it says.
  c.matmul_precision = "default"
  c.population = 1  # P > 1: P models in one vmapped program, in WORKDIR/members/<i>/
  c.sweep = ""  # with population: "step.<name>=v1,...,vP", one value of a real hyperparameter per member
  # XLA:CPU only: YNNPACK kernels for dots and reductions, with Eigen's convolutions (dots), none or all (genjax.xla).
  c.xla_cpu_ynn = DEFAULT_YNN
  c.train = ml_collections.ConfigDict({
      "steps": 2000, "batch_size": 128, "seed": 0, "log_every": 50, "sample_every": 500,
      "checkpoint_every": 1000, "max_to_keep": 3, "num_samples": 64,
      "steps_per_dispatch": 0,  # 0: chosen per model and backend (see train.steps_per_dispatch)
      # 0: resume from the newest checkpoint; N: from checkpoint N, moving newer ones to checkpoints-abandoned/
      "resume_step": 0,
      # N > 0: every N steps a cheap score (generators: classifier FID of 2000 samples; VAEs: test -ELBO; AEs: test
      # MSE) goes to metrics.jsonl, and the best checkpoint by it is kept in checkpoints-best/ (genjax.eval.during)
      "eval_every": 0,
  })
  return c
