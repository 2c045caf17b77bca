"""Model configs: every model has one in the package, overrides are typed, unknown keys are rejected."""

import importlib
import os
import pathlib
import subprocess
import sys
import tomllib

import jax
import numpy as np
import pytest

from genjax import config as cfg
from genjax.errors import UserError
from genjax.models import MODELS

REQUIRED = ["data.name", "optim.lr", "train.steps", "train.batch_size", "train.seed", "train.log_every",
            "train.sample_every", "train.checkpoint_every"]


ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_a_config_in_the_package_with_the_required_keys(name):
  assert name in cfg.names()
  c = cfg.model_config(name)
  assert c.model.name == name
  keys = set(cfg._keys(c))
  assert set(REQUIRED) <= keys
  cfg.check(c)
  doc = importlib.import_module(f"genjax.configs.{name}").__doc__
  assert "make train MODEL=" in doc and "Expected" in doc and "Hardware" in doc


def test_every_config_in_the_package_loads_and_names_a_model():
  assert set(MODELS) <= set(cfg.names())
  for name in cfg.names():  # the models' own and named variants (gmmn_ae)
    c = cfg.get(name)
    assert c.model.name in MODELS, name
    cfg.check(c)


def test_configs_load_without_the_source_tree(tmp_path, monkeypatch):
  """From another working directory, in a fresh interpreter that imports genjax from wherever it is installed."""
  monkeypatch.chdir(tmp_path)
  assert cfg.model_config("gan").model.name == "gan"
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  code = ("import pathlib, genjax.config as c; assert not pathlib.Path('experiments').exists(); "
          "print(*(c.model_config(n).model.name for n in c.names()))")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  assert set(MODELS) <= set(out) and len(out) == len(cfg.names())


def test_config_accepts_a_name_or_a_file(tmp_path):
  own = tmp_path / "my_gan.py"
  own.write_text("from genjax.configs import gan\n\ndef get_config():\n  c = gan.get_config()\n"
                 "  c.train.steps = 7\n  return c\n")
  assert cfg.get(own).train.steps == 7 and cfg.get(str(own)).train.steps == 7
  assert cfg.load(own).train.steps == 7
  assert cfg.get("gmmn_ae").model.name == "gmmn" and cfg.get("gmmn_ae").model.ae_workdir
  with pytest.raises(UserError, match=r"^no config named 'gna' in genjax.configs \(did you mean 'gan'\?\); available: "
                                      r"ae, "):
    cfg.get("gna")
  with pytest.raises(UserError, match="no config named 'os'"):
    cfg.model_config("os")  # only the modules of genjax.configs


def test_unknown_model_config_is_a_one_line_error(tmp_path, capsys):
  from genjax import main
  assert main.main(["train", "--model", "gan", "--config", "gna", "--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert err.startswith("genjax: error: no config named 'gna'") and err.count("\n") == 1
  assert main.main(["train", "--model", "gan", "--config", str(tmp_path / "none.py")]) == 2
  assert capsys.readouterr().err == f"genjax: error: no config file at {tmp_path / 'none.py'}\n"


def test_every_source_folder_is_packaged():
  """`pip install .` ships every folder of genjax with Python files (configs, kernels, lab, models)."""
  import setuptools
  find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
  packaged = set(setuptools.find_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
  folders = {".".join(d.relative_to(ROOT).parts) for d in (ROOT / "genjax").rglob("*")
             if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))}
  assert folders | {"genjax"} <= packaged
  assert {"genjax.configs", "genjax.lab", "genjax.models"} <= packaged


def test_overrides_convert_to_the_existing_type():
  c = cfg.model_config("gan")
  cfg.override(c, cfg.parse_overrides(["--config.train.steps=7", "--config.optim.lr=1e-3",
                                       "--config.model.gen_features=(8, 4)", "--config.step.loss=hinge"]))
  assert c.train.steps == 7 and c.optim.lr == 1e-3 and tuple(c.model.gen_features) == (8, 4)
  assert c.step.loss == "hinge"
  cfg.override(c, {"optim.lr": "3"})  # an int is a fine float
  assert isinstance(c.optim.lr, float)


def test_unknown_key_suggests_the_closest():
  c = cfg.model_config("gan")
  with pytest.raises(UserError, match=r"unknown config key 'train.stepz' \(did you mean 'train.steps'\?\)"):
    cfg.override(c, {"train.stepz": "3"})


@pytest.mark.parametrize("key,value", [("train.steps", "many"), ("train.steps", "2.5"), ("optim.lr", "fast")])
def test_wrong_type_is_rejected(key, value):
  c = cfg.model_config("gan")
  with pytest.raises(UserError, match=f"config key '{key}' expects"):
    cfg.override(c, {key: value})


@pytest.mark.parametrize("key,value", [("optim.lr", -1.0), ("optim.lr", 0.0), ("train.batch_size", 0),
                                       ("train.steps", -5)])
def test_bad_hyperparameters_are_rejected(key, value):
  c = cfg.model_config("vae")
  section, leaf = key.split(".")
  c[section][leaf] = value
  with pytest.raises(UserError, match=key):
    cfg.check(c)


def test_a_cosine_schedule_needs_its_decay_steps():
  c = cfg.model_config("gan")
  c.optim.schedule = "cosine"
  with pytest.raises(UserError, match="optim.decay_steps"):  # 0: the rate would never be defined
    cfg.check(c)
  c.optim.decay_steps = 3000
  cfg.check(c)
  c.optim.decay_start = 3000
  with pytest.raises(UserError, match="optim.decay_start"):
    cfg.check(c)


@pytest.mark.parametrize("warmup", [0, 100])
def test_a_cosine_from_decay_start_holds_the_rate_then_falls_to_zero(warmup):
  from genjax import optim
  c = cfg.model_config("gan")
  c.optim.schedule, c.optim.lr, c.optim.decay_steps, c.optim.decay_start = "cosine", 2e-3, 1000, 400
  c.optim.warmup_steps = warmup
  cfg.check(c)
  rates = []
  tx = optim.make_tx(c.optim)
  params = {"w": jax.numpy.zeros(())}
  state = tx.init(params)
  for _ in range(1001):  # for a constant gradient Adam's bias-corrected step is the learning rate itself
    updates, state = tx.update({"w": jax.numpy.ones(())}, state, params)
    rates.append(-float(updates["w"]))
  rates = np.array(rates)
  expected = [2e-3 * (0.5 * (1 + np.cos(np.pi * (t - 400) / 600)) if t >= 400 else
                      (min(t / warmup, 1.0) if warmup else 1.0)) for t in range(1001)]
  np.testing.assert_allclose(rates, expected, rtol=2e-3, atol=1e-9)


def test_bad_arguments():
  with pytest.raises(UserError, match="unrecognized argument"):
    cfg.parse_overrides(["--steps=3"])
  with pytest.raises(UserError, match="no config file at"):
    cfg.load(pathlib.Path("configs/none.py"))


def test_assign_sets_python_values_with_the_type_checks_of_override():
  c = cfg.model_config("dae")
  cfg.assign(c, {"step.noise": "mask", "step.noise_level": 1, "model.code_dim": 64})
  assert (c.step.noise, c.step.noise_level, c.model.code_dim) == ("mask", 1.0, 64)
  with pytest.raises(UserError, match=r"config key 'step.noise' expects str, got 3"):
    cfg.assign(c, {"step.noise": 3})
  with pytest.raises(UserError, match=r"unknown config key 'step.nois' \(did you mean 'step.noise'\?\)"):
    cfg.assign(c, {"step.nois": "mask"})
