"""The model contract (genjax.models.family) over every registered family."""

import ast
import pathlib

import pytest

import genjax
from genjax import config as cfg
from genjax import models
from genjax.models import ae_dense, family, gan_mlp, vae_dense, wgan
from genjax.models.family import BLOCK_NEEDS, BLOCKS, Family

REQUIRED = ("init_state", "train_step", "eval_step", "validate", "examples_per_step")
OPTIONAL = ("sample", "sample_class", "reconstruct", "encode", "decode", "likelihood_bounds", "prepare",
            "raw_generator")


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_registered_family_has_the_contract(name):
  f = models.MODELS[name]
  assert isinstance(f, Family) and f.name == name
  assert set(Family._fields) == {"name", "blocks", *REQUIRED, *OPTIONAL}
  for field in REQUIRED:
    assert callable(getattr(f, field)), field
  for field in OPTIONAL:
    assert getattr(f, field) is None or callable(getattr(f, field)), field
  assert f.blocks and set(f.blocks) <= set(BLOCKS), f.blocks
  for block in f.blocks:  # a declared block has what it calls
    assert all(getattr(f, need) is not None for need in BLOCK_NEEDS[block]), block
  # and a capability an evaluation block reads is declared by that block
  assert ("generator" in f.blocks) == (f.sample is not None)
  assert ("likelihood" in f.blocks) == (f.likelihood_bounds is not None)
  assert ("conditional" in f.blocks) == (f.sample_class is not None)
  assert (f.encode is None) == (f.decode is None) or f.decode is not None and f.encode is None  # GANs decode z
  assert f.raw_generator is None or "generator" in f.blocks
  assert f.kind in ("vae", "generator", "autoencoder")


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_config_step_keys_are_train_step_hyperparameters(name):
  c = cfg.model_config(name)
  assert set(c.step) <= set(family.hyperparameters(models.MODELS[name].train_step))


def test_variants_are_derived_from_their_base_family():
  m = models.MODELS
  for variant in ("dae", "sparse_ae", "ae_linear"):
    assert m[variant].validate is ae_dense.FAMILY.validate or variant == "dae" or variant == "sparse_ae"
    assert m[variant].examples_per_step is ae_dense.FAMILY.examples_per_step
  assert m["dae"].init_state is m["sparse_ae"].init_state is ae_dense.FAMILY.init_state
  assert m["iwae"].init_state is m["vae_dense"].init_state is vae_dense.FAMILY.init_state
  assert m["iwae"].sample is vae_dense.FAMILY.sample
  assert m["wgan"].init_state is m["wgan_gp"].init_state is gan_mlp.FAMILY.init_state
  assert m["wgan_gp"].eval_step is wgan.FAMILY.eval_step
  assert m["cgan"].train_step is gan_mlp.FAMILY.train_step


def test_bind_passes_only_the_hyperparameters_a_step_takes():
  def step(state, batch, rng, *, noise="g", level=0.5, axis_name=None):
    return noise, level
  assert family.hyperparameters(step) == ["noise", "level"]
  bound = family.bind(step, {"noise": "mask", "loss": "mse", "rng": 1})
  assert bound(None, None, None) == ("mask", 0.5)


def _python_files_outside_models():
  root = pathlib.Path(genjax.__file__).parent
  skip = {root / "models", root / "configs", root / "lab"}  # the families, their configs, the course experiments
  return [p for p in sorted(root.rglob("*.py")) if not any(s in p.parents for s in skip)]


def test_nothing_outside_models_probes_a_family_or_names_a_model():
  # 'vae' is also the kind of metrics a likelihood model's runs get (eval.json's `kind`, the leaderboard's table).
  names = set(models.MODELS) - {"vae"}
  found = []
  for path in _python_files_outside_models():
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
        target = ast.unparse(node.args[0])
        if "family" in target or "model" in target:
          found.append(f"{path.name}:{node.lineno} hasattr({target}, ...)")
      if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
        found.append(f"{path.name}:{node.lineno} names '{node.value}'")
  assert not found, found
