"""Experiment machinery: the statistics experiments report, and quick end-to-end runs writing results and figures."""

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from genjax import lab
from genjax.errors import UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "experiments"  # the checkout's experiment files, wherever pytest runs from
latent = lab.load(SOURCE / "latent.py")
NAMES = ["anomaly", "denoising", "direct_vs_adversarial", "interpolation", "latent2d", "mode_collapse", "pca",
         "sparsity"]


def test_auroc_matches_pairwise_definition_with_ties():
  rng = np.random.default_rng(0)
  neg = rng.integers(0, 6, 40).astype(float)  # many ties
  pos = rng.integers(2, 9, 30).astype(float)
  pairs = (pos[None, :] > neg[:, None]) + 0.5 * (pos[None, :] == neg[:, None])
  assert lab.auroc(neg, pos) == pytest.approx(pairs.mean(), abs=1e-12)
  assert lab.auroc([0, 1], [2, 3]) == 1.0 and lab.auroc([2, 3], [0, 1]) == 0.0


def test_pooled_psnr():
  x = np.zeros((2, 4, 4, 1))
  assert lab.pooled_psnr(x + 0.1, x) == pytest.approx(20.0)  # MSE 0.01 -> 20 dB


def test_slerp_keeps_endpoints_and_norm():
  a, b = jnp.array([3.0, 0.0]), jnp.array([0.0, 3.0])
  path = latent._slerp(a, b, 5)
  np.testing.assert_allclose(path[0], a, atol=1e-6)
  np.testing.assert_allclose(path[-1], b, atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(path, axis=1), 3.0, rtol=1e-6)
  assert float(jnp.linalg.norm(latent._lerp(a, b, 3)[1])) < 3.0  # the straight line cuts inside


def test_unknown_experiment_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="unknown experiment 'nope'; available: .*latent2d"):
    lab.run("nope", root=tmp_path, source=SOURCE)


def test_experiments_are_the_files_of_experiments_folder(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)  # make experiment runs from the checkout's root: the default folder is ./experiments
  found = lab.available()
  assert sorted(found) == NAMES and found == lab.available(SOURCE)
  for name, fn in found.items():
    assert f"make experiment NAME={name}" in fn.__doc__ and "Expected" in fn.__doc__ and "Hardware" in fn.__doc__
  monkeypatch.chdir(tmp_path)  # elsewhere (an installed genjax) there are none, and it says so in one line
  with pytest.raises(UserError, match=r"^no experiments folder at .*: the experiments are files of the genjax source "
                                      r"checkout; run from its root \(make experiment NAME=<name>\)$"):
    lab.run("latent2d", root=tmp_path)


@pytest.mark.parametrize("name,figures", [("latent2d", ["manifold.png", "encodings.png"])])
def test_quick_experiment_writes_results_and_figures(tmp_path, name, figures):
  results = lab.run(name, quick=True, root=tmp_path, max_steps=16, source=SOURCE)
  out = tmp_path / name / "quick"
  on_disk = json.loads((out / "results.json").read_text())
  assert on_disk["experiment"] == name and on_disk["protocol"]["quick"] is True
  assert on_disk["figures"] == figures == results["figures"]
  for f in figures:
    assert (out / f).stat().st_size > 1000
  assert all(m["steps"] == 16 for m in on_disk["models"].values())
