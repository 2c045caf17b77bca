"""genjax.eval.likelihood: the importance-weighted bound against the ELBO, and the fixed binarization."""

import numpy as np
import pytest
from test_eval_run import feature_net, trained  # noqa: F401 -- feature_net is a fixture

from genjax.eval import likelihood, restore


def test_likelihood_bound_tightens_with_k_and_stays_below_the_elbo(feature_net, tmp_path):  # noqa: F811
  run = restore.load_run(trained(tmp_path, "vae_dense", steps=20))
  small = likelihood.likelihood_metrics(run, 0, k=1, examples=100)
  large = likelihood.likelihood_metrics(run, 0, k=200, examples=100)
  assert small["nll"] == pytest.approx(small["neg_elbo"], abs=1e-3)  # k = 1: the bound is the ELBO
  assert large["nll"] < large["neg_elbo"] - 0.5  # the importance-weighted bound is tighter
  assert large["neg_elbo"] == pytest.approx(small["neg_elbo"], abs=4 * small["neg_elbo_se"])


def test_binarization_is_fixed_and_follows_the_grey_levels():
  x = np.full((4, 200, 200, 1), 64, np.uint8)
  b = likelihood.binarize(x, 0)
  assert set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.25) < 0.01
  np.testing.assert_array_equal(b, likelihood.binarize(x, 0))
  assert not np.array_equal(b, likelihood.binarize(x, 1))
