"""Evaluation metrics against numpy/scipy references, on their fixed points, and against bugs other zoos shipped."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from genjax import metrics


def _random_cov(rng, d):
  g = rng.normal(size=(d, d))
  return g @ g.T / d + 0.1 * np.eye(d)


def _poly(x, y):
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_reference(a, b):
  """The U-statistic as full matrices with their diagonals zeroed."""
  m, n = len(a), len(b)
  kaa, kbb = _poly(a, a), _poly(b, b)
  np.fill_diagonal(kaa, 0.0)
  np.fill_diagonal(kbb, 0.0)
  return kaa.sum() / (m * (m - 1)) + kbb.sum() / (n * (n - 1)) - 2.0 * _poly(a, b).mean()


def _radii(x, k):
  d = cdist(x, x)
  np.fill_diagonal(d, np.inf)
  return np.sort(d, axis=1)[:, k - 1]


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  d = 8
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
  ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2.0 * scipy.linalg.sqrtm(s1 @ s2).real)
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), ref, rtol=1e-9)


def test_fid_matches_reference_and_handles_singular_covariance():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(150, 10))
  b = rng.normal(size=(120, 10)) @ rng.normal(size=(10, 10)) * 0.5 + 0.3
  mu_a, mu_b = a.mean(0), b.mean(0)
  s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  ref = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * scipy.linalg.sqrtm(s_a @ s_b).real)
  np.testing.assert_allclose(metrics.fid(a, b), ref, rtol=1e-9)
  # Fewer samples than dimensions: both covariances are singular, where sqrtm goes complex. Against itself it is 0.
  small = rng.normal(size=(6, 20))
  assert abs(metrics.fid(small, small)) < 1e-6 * np.trace(np.cov(small, rowvar=False))
  assert np.isfinite(metrics.fid(small, rng.normal(size=(7, 20))))


def test_fid_and_kid_zero_on_self_and_grow_with_noise():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(4000, 16))
  noise = rng.normal(size=a.shape)
  fids, kids = [], []
  for sigma in (0.0, 0.5, 1.0, 2.0):
    b = a + sigma * noise
    fids.append(metrics.fid(a, b))
    kids.append(metrics.kid(a, b, num_subsets=10, subset_size=1000)["kid"])
  assert abs(fids[0]) < 1e-6 * np.trace(np.cov(a, rowvar=False))
  # Subsets of one pool share points, which pulls the estimate about -2 (E k(x,x) - E k(x,x')) / N = -0.004 off 0.
  assert abs(kids[0]) < 0.01
  assert all(np.diff(fids) > 0), fids
  assert all(np.diff(kids) > 0), kids


def test_mmd2_unbiased_matches_double_loop():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(7, 5)), rng.normal(size=(9, 5)) + 0.5
  k = lambda x, y: (x @ y / 5 + 1.0) ** 3
  aa = sum(k(a[i], a[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
  bb = sum(k(b[i], b[j]) for i, j in itertools.permutations(range(9), 2)) / (9 * 8)
  ab = sum(k(x, y) for x in a for y in b) / (7 * 9)
  np.testing.assert_allclose(metrics.mmd2_unbiased_polynomial(a, b), aa + bb - 2.0 * ab, rtol=1e-5)
  # A chunk size that does not divide either set.
  np.testing.assert_allclose(metrics.mmd2_unbiased_polynomial(a, b, chunk_size=4), aa + bb - 2.0 * ab, rtol=1e-5)


def test_kid_averages_reference_estimates_over_seeded_subsets():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(80, 6)), rng.normal(size=(70, 6)) * 1.2
  out = metrics.kid(a, b, num_subsets=5, subset_size=100, seed=7)
  # subset_size is cut to min(100, 80, 70) = 70, and the subsets are drawn a first, then b.
  draw = np.random.default_rng(7)
  ref = []
  for _ in range(5):
    ia = draw.choice(80, 70, replace=False)
    ib = draw.choice(70, 70, replace=False)
    ref.append(_mmd2_reference(a[ia], b[ib]))
  np.testing.assert_allclose(out["kid"], np.mean(ref), rtol=1e-4)
  np.testing.assert_allclose(out["kid_std"], np.std(ref), rtol=1e-3)


def test_kid_is_unbiased_where_the_v_statistic_is_not():
  # Other zoos shipped the biased MMD^2, which keeps k(x_i, x_i) and so sits well above 0 for equal distributions.
  rng = np.random.default_rng(5)
  draws, n, d = 2000, 8, 4
  x, y = rng.normal(size=(draws, n, d)), rng.normal(size=(draws, n, d))
  u = np.array([metrics.mmd2_unbiased_polynomial(x[i], y[i]) for i in range(draws)])
  kxx = (np.einsum("bid,bjd->bij", x, x) / d + 1.0) ** 3
  kyy = (np.einsum("bid,bjd->bij", y, y) / d + 1.0) ** 3
  kxy = (np.einsum("bid,bjd->bij", x, y) / d + 1.0) ** 3
  v = kxx.mean((1, 2)) + kyy.mean((1, 2)) - 2.0 * kxy.mean((1, 2))
  se_u, se_v = u.std() / np.sqrt(draws), v.std() / np.sqrt(draws)
  assert abs(u.mean()) < 3.0 * se_u, (u.mean(), se_u)
  assert v.mean() > 10.0 * se_v, (v.mean(), se_v)


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_match_brute_force(k):
  rng = np.random.default_rng(6)
  real = rng.normal(size=(150, 8))
  fake = rng.normal(size=(120, 8)) * 1.3 + 0.4
  r_real, r_fake = _radii(real, k), _radii(fake, k)
  d = cdist(fake, real)
  precision = np.mean(np.any(d <= r_real[None, :], axis=1))
  recall = np.mean(np.any(d.T <= r_fake[None, :], axis=1))
  out = metrics.precision_recall(real, fake, k=k)
  assert 0.0 < precision < 1.0 and 0.0 < recall < 1.0
  assert out == {"precision": pytest.approx(precision, abs=1e-12), "recall": pytest.approx(recall, abs=1e-12)}


def test_density_coverage_match_brute_force():
  rng = np.random.default_rng(7)
  real = rng.normal(size=(140, 10))
  fake = rng.normal(size=(110, 10)) * 0.8 + 0.3
  k = 5
  r = _radii(real, k)
  d = cdist(real, fake)
  density = np.sum(d <= r[:, None]) / (k * len(fake))
  coverage = np.mean(d.min(axis=1) < r)
  out = metrics.density_coverage(real, fake, k=k)
  assert 0.0 < coverage < 1.0
  np.testing.assert_allclose(out["density"], density, rtol=1e-12)
  np.testing.assert_allclose(out["coverage"], coverage, rtol=1e-12)


def test_manifold_metrics_on_self_and_on_a_far_set():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(200, 12)) + 5.0
  assert metrics.precision_recall(x, x, k=3) == {"precision": 1.0, "recall": 1.0}
  # Each real ball holds its centre and its k neighbours, so a set against itself has density (k+1)/k, not 1.
  assert metrics.density_coverage(x, x, k=5) == {"density": pytest.approx(6 / 5), "coverage": 1.0}
  far = x + 100.0
  assert metrics.precision_recall(x, far, k=3) == {"precision": 0.0, "recall": 0.0}
  assert metrics.density_coverage(x, far, k=5) == {"density": 0.0, "coverage": 0.0}


def test_ball_boundaries_count_for_precision_recall_density_but_not_coverage():
  # On a line with exactly representable distances, k=1: real 10 has radius 7 (to 3), and fake 17 sits on that sphere.
  real = np.array([[0.0], [1.0], [3.0], [10.0]])
  fake = np.array([[17.0], [24.0]])
  assert metrics.precision_recall(real, fake, k=1) == {"precision": 0.5, "recall": 0.25}
  assert metrics.density_coverage(real, fake, k=1) == {"density": 0.5, "coverage": 0.0}


def test_density_is_about_one_for_a_second_sample():
  rng = np.random.default_rng(9)
  out = metrics.density_coverage(rng.normal(size=(500, 6)), rng.normal(size=(500, 6)), k=5)
  assert abs(out["density"] - 1.0) < 0.15, out
  assert out["coverage"] > 0.9, out


def test_chunked_distances_equal_unchunked():
  rng = np.random.default_rng(10)
  x, y = rng.normal(size=(103, 9)) + 3.0, rng.normal(size=(57, 9))
  d7 = metrics.pairwise_sq_distances(x, y, chunk_size=7)
  whole = metrics.pairwise_sq_distances(x, y, chunk_size=1000)
  assert d7.shape == (103, 57)
  np.testing.assert_allclose(d7, whole, rtol=1e-6, atol=1e-5)
  np.testing.assert_allclose(d7, cdist(x, y, "sqeuclidean"), rtol=1e-5, atol=1e-4)
  for k in (1, 4):
    r7 = metrics.kth_nearest_radii(x, k, chunk_size=7)
    np.testing.assert_allclose(r7, metrics.kth_nearest_radii(x, k, chunk_size=1000), rtol=1e-6)
    np.testing.assert_allclose(r7, _radii(x, k), rtol=1e-5)
  assert metrics.precision_recall(x, y, chunk_size=7) == metrics.precision_recall(x, y)
  assert metrics.density_coverage(x, y, chunk_size=7) == metrics.density_coverage(x, y)


def test_classifier_score_matches_formula():
  rng = np.random.default_rng(11)
  probs = rng.dirichlet(np.full(10, 0.3), size=103)
  probs[:5] = np.eye(10)[:5]  # exact zeros, as a confident softmax gives
  out = metrics.classifier_score(probs, splits=4)
  scores = []
  # The split bounds of the original Inception Score code.
  for part in (probs[i * 103 // 4:(i + 1) * 103 // 4] for i in range(4)):
    py = part.mean(0)
    kl = np.array([sum(p * np.log(p / q) for p, q in zip(row, py) if p > 0) for row in part])
    scores.append(np.exp(kl.mean()))
  np.testing.assert_allclose(out["classifier_score"], np.mean(scores), rtol=1e-10)
  np.testing.assert_allclose(out["classifier_score_std"], np.std(scores), rtol=1e-10)
  # Confident and balanced scores C; one class, or no confidence at all, scores 1.
  assert metrics.classifier_score(np.tile(np.eye(10), (20, 1)), splits=2)["classifier_score"] == pytest.approx(10.0)
  assert metrics.classifier_score(np.tile(np.eye(10)[3], (200, 1)))["classifier_score"] == pytest.approx(1.0)
  assert metrics.classifier_score(np.full((200, 10), 0.1))["classifier_score"] == pytest.approx(1.0)


def test_class_stats_on_hand_made_labels():
  # 990 of one class and two classes of 0.5% each, the rare mistakes of a classifier: still one class.
  collapsed = np.concatenate([np.full(990, 3), np.full(5, 1), np.full(5, 7)])
  out = metrics.class_stats(collapsed)
  assert out["class_histogram"] == [0, 5, 0, 990, 0, 0, 0, 5, 0, 0]
  assert out["classes_covered"] == 1
  p = np.array([0.005, 0.99, 0.005])
  np.testing.assert_allclose(out["class_kl"], np.sum(p * np.log(10 * p)), rtol=1e-12)
  # Exactly at the threshold a class does not count, just above it does.
  assert metrics.class_stats(np.concatenate([np.full(990, 3), np.full(10, 1)]))["classes_covered"] == 1
  assert metrics.class_stats(np.concatenate([np.full(980, 3), np.full(20, 1)]))["classes_covered"] == 2
  uniform = metrics.class_stats(np.repeat(np.arange(10), 100))
  assert uniform["classes_covered"] == 10 and uniform["class_kl"] == pytest.approx(0.0, abs=1e-12)
  single = metrics.class_stats(np.full(100, 4))
  assert single["classes_covered"] == 1 and single["class_kl"] == pytest.approx(np.log(10))
  with pytest.raises(ValueError):
    metrics.class_stats(np.array([0, 10]))


def test_generator_metrics_returns_every_key_finite():
  rng = np.random.default_rng(12)
  real, fake = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) * 1.1
  probs = rng.dirichlet(np.ones(10), size=250)
  out = metrics.generator_metrics(real, fake, probs, k=3, seed=1)
  keys = {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classifier_score",
          "classifier_score_std", "classes_covered", "class_kl", "class_histogram"}
  assert set(out) == keys
  assert all(np.isfinite(v) for key, v in out.items() if key != "class_histogram")
  assert out["class_histogram"] == np.bincount(np.argmax(probs, axis=1), minlength=10).tolist()
  assert out["precision"] == metrics.precision_recall(real, fake, k=3)["precision"]
  assert out["density"] == metrics.density_coverage(real, fake, k=5)["density"]
