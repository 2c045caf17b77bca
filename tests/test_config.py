"""Experiment configs: every model has one, overrides are typed, unknown keys are rejected."""

import pathlib

import pytest

from genjax import config as cfg
from genjax.errors import UserError
from genjax.models import MODELS

REQUIRED = ["data.name", "optim.lr", "train.steps", "train.batch_size", "train.seed", "train.log_every",
            "train.sample_every", "train.checkpoint_every"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_has_an_experiment_with_the_required_keys(name):
  path = cfg.EXPERIMENTS_DIR / f"{name}.py"
  c = cfg.load(path)
  assert c.model.name == name
  keys = set(cfg._keys(c))
  assert set(REQUIRED) <= keys
  cfg.check(c)
  doc = path.read_text().split('"""')[1]
  assert "make train MODEL=" in doc and "Expected" in doc and "Hardware" in doc


def test_overrides_convert_to_the_existing_type():
  c = cfg.load(cfg.EXPERIMENTS_DIR / "gan.py")
  cfg.override(c, cfg.parse_overrides(["--config.train.steps=7", "--config.optim.lr=1e-3",
                                       "--config.model.gen_features=(8, 4)", "--config.step.loss=hinge"]))
  assert c.train.steps == 7 and c.optim.lr == 1e-3 and tuple(c.model.gen_features) == (8, 4)
  assert c.step.loss == "hinge"
  cfg.override(c, {"optim.lr": "3"})  # an int is a fine float
  assert isinstance(c.optim.lr, float)


def test_unknown_key_suggests_the_closest():
  c = cfg.load(cfg.EXPERIMENTS_DIR / "gan.py")
  with pytest.raises(UserError, match=r"unknown config key 'train.stepz' \(did you mean 'train.steps'\?\)"):
    cfg.override(c, {"train.stepz": "3"})


@pytest.mark.parametrize("key,value", [("train.steps", "many"), ("train.steps", "2.5"), ("optim.lr", "fast")])
def test_wrong_type_is_rejected(key, value):
  c = cfg.load(cfg.EXPERIMENTS_DIR / "gan.py")
  with pytest.raises(UserError, match=f"config key '{key}' expects"):
    cfg.override(c, {key: value})


@pytest.mark.parametrize("key,value", [("optim.lr", -1.0), ("optim.lr", 0.0), ("train.batch_size", 0),
                                       ("train.steps", -5)])
def test_bad_hyperparameters_are_rejected(key, value):
  c = cfg.load(cfg.EXPERIMENTS_DIR / "vae.py")
  section, leaf = key.split(".")
  c[section][leaf] = value
  with pytest.raises(UserError, match=key):
    cfg.check(c)


def test_bad_arguments():
  with pytest.raises(UserError, match="unrecognized argument"):
    cfg.parse_overrides(["--steps=3"])
  with pytest.raises(UserError, match="no experiment config"):
    cfg.load(pathlib.Path("experiments/none.py"))
