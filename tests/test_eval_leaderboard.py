"""genjax.eval.leaderboard: every run tabled, and a fresh eval.json reused rather than scored again."""

import pytest
from test_eval_run import FAST, feature_net, trained  # noqa: F401 -- feature_net is a fixture

from genjax.eval import leaderboard
from genjax.eval import run as evaluation


def test_leaderboard_tables_every_run_and_reuses_fresh_results(feature_net, tmp_path, monkeypatch):  # noqa: F811
  root = tmp_path / "runs"
  trained(root, "ae_dense")
  trained(root, "gan_mlp")
  (root / "notes").mkdir()
  (root / "notes" / "config.json").write_text("{}")  # not a run: skipped
  text = leaderboard.leaderboard(root, **FAST, quiet=True)
  assert (root / "leaderboard.md").read_text() == text
  assert "| `ae_dense` | ae_dense | mnist | 4 |" in text and "| `gan_mlp` | gan_mlp | mnist | 4 |" in text
  assert "Feature network" in text and "## Generators" in text and "## Autoencoders" in text
  monkeypatch.setattr(evaluation, "evaluate_run", lambda *a, **k: pytest.fail("re-evaluated a fresh result"))
  assert leaderboard.leaderboard(root, **FAST, quiet=True) == text
