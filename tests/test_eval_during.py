"""train.eval_every: a cheap score in the training process, logged, and the best checkpoint by it, which
max_to_keep never removes and a resumed run keeps; make eval --best scores it."""

import json

import jax
import numpy as np
import pytest
from conftest import small_config

from genjax import checkpoint, train
from genjax import config as cfg
from genjax.errors import UserError
from genjax.eval import during, restore
from genjax.eval import run as evaluation


def scripted(monkeypatch, values: dict):
  """Replaces the scorer by one that gives `values[step]`, and records the steps it scored."""
  seen = []

  def scorer(family, config, image_shape, workdir):
    def score(state, step):
      seen.append(step)
      return values[step]
    return "mse", score
  monkeypatch.setattr(during, "scorer", scorer)
  return seen


def config(steps, **train):
  return small_config("ae_dense", steps=steps, eval_every=2, checkpoint_every=2, log_every=2, sample_every=8,
                      max_to_keep=1, **train)


def test_a_worse_score_keeps_the_earlier_best_through_max_to_keep(tmp_path, monkeypatch):
  seen = scripted(monkeypatch, {2: 5.0, 4: 3.0, 6: 4.0, 8: 6.0})
  result = train.train(config(8), tmp_path, quiet=True)
  assert seen == [2, 4, 6, 8] and result.eval_s > 0
  assert checkpoint.saved_steps(tmp_path / "checkpoints") == [8]  # max_to_keep=1
  assert json.loads((tmp_path / "best.json").read_text()) == {"step": 4, "metric": "mse", "value": 3.0}
  assert 4 in checkpoint.saved_steps(tmp_path / "checkpoints-best")
  scores = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "eval_mse" in r]
  assert [(r["step"], r["eval_mse"]) for r in scores] == [(2, 5.0), (4, 3.0), (6, 4.0), (8, 6.0)]
  best = restore.load_run(tmp_path, best=True)
  assert best.step == 4
  scored = evaluation.evaluate_run(tmp_path, best=True)  # make eval --best: apart from eval.json
  assert scored["step"] == 4 and (tmp_path / "eval-best.json").exists() and not (tmp_path / "eval.json").exists()
  # the state saved as best is the one at step 4: a run stopped at step 4 ends there bit for bit
  again = train.train(config(4), tmp_path / "to4", quiet=True)
  jax.tree.map(np.testing.assert_array_equal, best.state.params, again.state.params)


def test_the_best_survives_a_resume_and_a_better_score_replaces_it(tmp_path, monkeypatch):
  scripted(monkeypatch, {2: 5.0, 4: 3.0, 6: 4.0, 8: 3.5, 10: 2.0})
  train.train(config(6), tmp_path, quiet=True)
  train.train(config(8), tmp_path, quiet=True)  # resumed at 6: 3.5 does not beat the 3.0 it had
  assert json.loads((tmp_path / "best.json").read_text())["step"] == 4
  train.train(config(10), tmp_path, quiet=True)
  assert json.loads((tmp_path / "best.json").read_text()) == {"step": 10, "metric": "mse", "value": 2.0}
  assert restore.load_run(tmp_path, best=True).step == 10


def test_a_run_without_eval_every_has_no_best(tmp_path):
  plain = train.train(small_config("ae_dense", steps=2, log_every=2, sample_every=2, checkpoint_every=2),
                      tmp_path / "plain", quiet=True)
  assert plain.eval_s == 0 and not (tmp_path / "plain" / "best.json").exists()
  with pytest.raises(UserError, match="has no best checkpoint: train with --config.train.eval_every=N"):
    evaluation.evaluate_run(tmp_path / "plain", best=True)


@pytest.mark.parametrize("model,metric", [pytest.param("ae_dense", "mse", marks=pytest.mark.slow),
                                          pytest.param("vae_dense", "neg_elbo", marks=pytest.mark.slow),
                                          ("gan_mlp", "fid")])
def test_each_kind_gets_its_score_in_the_loop(tmp_path, monkeypatch, untrained_feature_net, model, metric):
  """The real scorers: test MSE, test -ELBO, classifier FID (here in an untrained classifier's feature space, as
  the scorer's arithmetic is the same)."""
  monkeypatch.setattr(during, "SAMPLES", 100)
  monkeypatch.setattr(during, "REFERENCE", 200)
  monkeypatch.setattr(during, "ELBO_EXAMPLES", 50)
  train.train(small_config(model, steps=4, eval_every=4, log_every=2, sample_every=4, checkpoint_every=4),
              tmp_path, quiet=True)
  [record] = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if f"eval_{metric}" in r]
  assert record["step"] == 4 and np.isfinite(record[f"eval_{metric}"]) and record[f"eval_{metric}"] > 0
  assert json.loads((tmp_path / "best.json").read_text())["metric"] == metric


def test_eval_every_must_divide_into_chunks_and_is_refused_for_populations():
  c = small_config("ae_dense", steps=12, eval_every=6, log_every=4, sample_every=12, checkpoint_every=12)
  assert 6 % train.steps_per_dispatch(c, backend="cpu") == 0
  assert 6 % train.steps_per_dispatch(c, backend="gpu") == 0
  c.train.eval_every = -1
  with pytest.raises(UserError, match="train.eval_every must be 0"):
    cfg.check(c)
  c.train.eval_every, c.population = 6, 2
  with pytest.raises(UserError, match="not available for populations"):
    cfg.check(c)
