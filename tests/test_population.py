"""Population training (config.population, config.sweep): P models in one vmapped program, each member the same as
training it alone, each with its own run directory."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_config

from genjax import config as cfg
from genjax import population, train
from genjax.errors import UserError
from genjax.models import MODELS


@pytest.mark.parametrize("name,swept", [("vae_dense", {"step.beta": [0.5, 2.0, 4.0]}), ("gan_mlp", {}),
                                        ("gan_mlp", {"optim.lr": [1e-4, 1e-3, 1e-2]})])
def test_each_member_steps_as_if_alone(name, swept):
  """Three vmapped steps of a population of 3 equal, member by member, three steps of each member on its own key
  and swept value, built alone from its own config (for a learning rate: its own optimizer)."""
  config = cfg.model_config(name)
  family = MODELS[name]
  batch = {"image": jax.random.uniform(jax.random.PRNGKey(0), (16, 28, 28, 1)), "label": jnp.arange(16) % 10}
  init = lambda rng, c=config: family.init_state(rng, c, batch)  # noqa: E731
  configs = [population.member_config(config, i, swept) for i in range(3)]
  stacked = population.init(init, jax.random.PRNGKey(1), 3, configs if "optim.lr" in swept else None)
  static = {k: v for k, v in config.step.items() if f"step.{k}" not in swept}
  step = functools.partial(family.train_step, **static)
  pop_step = jax.jit(population.step(step, 3, swept))
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  alone = [init(keys[i], configs[i]) for i in range(3)]
  for t in range(3):
    rng = jax.random.PRNGKey(10 + t)
    stacked, metrics = pop_step(stacked, batch, rng)
    keys = jax.random.split(rng, 3)
    for i in range(3):
      hp = {k[len("step."):]: v[i] for k, v in swept.items() if k.startswith("step.")}
      alone[i], m = jax.jit(step)(alone[i], batch, keys[i], **hp)
      for k in m:
        np.testing.assert_allclose(metrics[k][i], m[k], rtol=2e-5, atol=1e-6)
  for i in range(3):
    for a, b in zip(jax.tree.leaves(population.take(stacked, i)), jax.tree.leaves(alone[i])):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # Adam turns float noise in a ~0 gradient into ~lr/100
  # the members differ: a population is not one model copied
  first = jax.tree.leaves(population.take(stacked, 0))
  assert any(not np.allclose(a, b) for a, b in zip(first, jax.tree.leaves(population.take(stacked, 1))))


def test_population_run_has_a_directory_per_member_and_resumes(tmp_path):
  c = small_config("vae_dense", steps=4)
  c.population, c.sweep = 2, "step.beta=0.5,4"
  r = train.train(c, tmp_path, quiet=True)
  assert r.compiles == 1 and jax.tree.leaves(r.state)[0].shape[0] == 2
  info = json.loads((tmp_path / "population.json").read_text())
  assert info["population"] == 2 and info["sweep"] == {"step.beta": [0.5, 4.0]}
  kls = []
  for i, beta in enumerate((0.5, 4.0)):
    member = tmp_path / "members" / str(i)
    saved = json.loads((member / "config.json").read_text())
    assert saved["config"]["step"]["beta"] == beta and saved["config"]["population"] == 1
    assert saved["member"] == i and (member / "checkpoints" / "4").exists()
    assert (member / "samples" / "samples_000004.png").exists()
    records = [json.loads(line) for line in (member / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records] == [2, 4]
    np.testing.assert_allclose(records[-1]["loss"], records[-1]["recon"] + beta * records[-1]["kl"], rtol=1e-4)
    kls.append(records[-1]["kl"])
  assert kls[0] != kls[1]
  c.train.steps = 8
  r = train.train(c, tmp_path, quiet=True)
  assert (r.start_step, r.steps, r.compiles) == (4, 8, 1)
  # a crash between two members' saves: the run resumes from the newest step both have
  import shutil
  shutil.rmtree(tmp_path / "members" / "1" / "checkpoints" / "8")
  r = train.train(c, tmp_path, quiet=True)
  assert (r.start_step, r.steps) == (4, 8)
  # the workdir holds this population and no other layout
  c.population, c.sweep = 3, "step.beta=1,2,3"
  with pytest.raises(UserError, match="holds a population of 2, not 3"):
    train.train(c, tmp_path, quiet=True)
  c.population, c.sweep = 1, ""
  with pytest.raises(UserError, match="holds a population; train it with its population setting"):
    train.train(c, tmp_path, quiet=True)


def test_sweeping_a_structural_hyperparameter_is_one_line(tmp_path):
  """historical_averaging > 0 decides in Python whether the step keeps running means: it cannot vary in one program."""
  c = small_config("gan_mlp", steps=2, log_every=2, sample_every=2, checkpoint_every=2)
  c.population, c.sweep = 2, "step.historical_averaging=0,0.1"
  with pytest.raises(UserError, match="decides the structure of gan_mlp's step"):
    train.train(c, tmp_path, quiet=True)


@pytest.mark.parametrize("population_size,sweep,message", [
    (1, "step.beta=1,2", "needs population > 1"),
    (2, "step.beta=1,2,3", "3 values of step.beta for a population of 2"),
    (2, "optim.b1=0.5,0.9", "should look like step"),
    (2, "optim.lr=0.1,0", "every optim.lr must be positive"),
    (2, "step.nope=1,2", "not a real-valued hyperparameter"),
    (2, "step.beta=a,b", "must be numbers"),
    (0, "", "population must be at least 1"),
    (2, "step.beta=-1,1", "step.beta must be >= 0"),  # each member's value is validated
])
def test_bad_population_settings_are_one_line(tmp_path, population_size, sweep, message):
  c = small_config("vae_dense")
  c.population, c.sweep = population_size, sweep
  with pytest.raises(UserError, match=message):
    train.train(c, tmp_path, quiet=True)
