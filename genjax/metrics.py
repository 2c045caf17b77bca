"""Evaluation metrics of generated images, computed on classifier feature vectors and class probabilities."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# Rows of the query set per device step: a [1024, 10000] float32 block is 41 MB, so 10k x 10k stays well under 1 GB.
CHUNK_SIZE = 1024
# GPUs would otherwise run float32 matmuls in TF32, whose 10-bit mantissa moves points across ball boundaries.
_HIGHEST = jax.lax.Precision.HIGHEST


def _as_features(x) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  return x.reshape(x.shape[0], -1)


def _centered(*sets):
  """The sets shifted by the mean of the first, as float32: distances do not change, and ||x||^2 + ||y||^2 - 2 x.y
  loses far fewer digits to cancellation around the origin than around a large (e.g. post-ReLU) feature mean."""
  mean = sets[0].mean(axis=0)
  return tuple(jnp.asarray(s - mean, dtype=jnp.float32) for s in sets)


def _chunks(q_NxD, chunk_size: int):
  """q padded with zero rows to a multiple of chunk_size and split into [num_chunks, chunk_size, D] with each row's
  index, so that one compiled step serves every chunk; callers drop the results of the padding rows."""
  n = q_NxD.shape[0]
  # Small sets would otherwise be padded up to a whole chunk of wasted rows.
  chunk_size = max(1, min(chunk_size, n))
  pad = -n % chunk_size
  q = jnp.concatenate([q_NxD, jnp.zeros((pad, q_NxD.shape[1]), q_NxD.dtype)])
  return q.reshape(-1, chunk_size, q.shape[1]), jnp.arange(n + pad).reshape(-1, chunk_size)


def _sq_dist_block(q_CxD, r_NxD):
  qq = jnp.sum(q_CxD * q_CxD, axis=-1)
  rr = jnp.sum(r_NxD * r_NxD, axis=-1)
  return jnp.maximum(qq[:, None] + rr[None, :] - 2.0 * jnp.matmul(q_CxD, r_NxD.T, precision=_HIGHEST), 0.0)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _sq_distances(q, r, *, chunk_size: int):
  qc, _ = _chunks(q, chunk_size)
  return jax.lax.map(lambda c: _sq_dist_block(c, r), qc).reshape(-1, r.shape[0])[: q.shape[0]]


@functools.partial(jax.jit, static_argnames=("k", "chunk_size"))
def _kth_nearest_sq(x, *, k: int, chunk_size: int):
  """Squared distance of each row to its k-th nearest other row; the row itself is masked by index, so a duplicate
  point still counts as a neighbour at distance 0."""
  qc, ic = _chunks(x, chunk_size)

  def step(args):
    c, idx = args
    d2 = _sq_dist_block(c, x)
    d2 = jnp.where(idx[:, None] == jnp.arange(x.shape[0])[None, :], jnp.inf, d2)
    return -jax.lax.top_k(-d2, k)[0][:, k - 1]

  return jax.lax.map(step, (qc, ic)).reshape(-1)[: x.shape[0]]


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _balls_holding(q, r, r_radii_sq, *, chunk_size: int):
  """For each query row, how many balls B(r_i, radius_i) hold it, with d <= radius."""
  qc, _ = _chunks(q, chunk_size)
  step = lambda c: jnp.sum(_sq_dist_block(c, r) <= r_radii_sq[None, :], axis=1)
  return jax.lax.map(step, qc).reshape(-1)[: q.shape[0]]


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _nearest_sq(q, r, *, chunk_size: int):
  """For each query row, the squared distance to its nearest row of r."""
  qc, _ = _chunks(q, chunk_size)
  return jax.lax.map(lambda c: jnp.min(_sq_dist_block(c, r), axis=1), qc).reshape(-1)[: q.shape[0]]


def pairwise_sq_distances(x_NxD, y_MxD, *, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
  """||x_i - y_j||^2 as an [N, M] array, computed chunk_size rows of x at a time; for sets whose full matrix fits."""
  x, y = _centered(_as_features(x_NxD), _as_features(y_MxD))
  return np.asarray(_sq_distances(x, y, chunk_size=chunk_size))


def kth_nearest_radii(feats_NxD, k: int, *, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
  """r_i = distance from x_i to its k-th nearest neighbour among the other rows (Kynkaanniemi et al. 2019), [N]."""
  (x,) = _centered(_as_features(feats_NxD))
  return np.sqrt(np.asarray(_kth_nearest_sq(x, k=k, chunk_size=chunk_size), dtype=np.float64))


def _sqrt_psd(s_DxD):
  w, v = np.linalg.eigh(s_DxD)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}), the Frechet distance of two Gaussians (Heusel et al. 2017)."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  # S1 S2 is similar to the PSD sqrt(S1) S2 sqrt(S1), so Tr (S1 S2)^{1/2} is the sum of the square roots of the latter's
  # eigenvalues: real and stable even for singular covariances, where scipy's sqrtm goes complex or needs an eps offset.
  r = _sqrt_psd(s1)
  m = r @ s2 @ r
  tr_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (m + m.T)), 0.0, None)))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def fid(feats_a_NxD, feats_b_MxD) -> float:
  """Frechet distance of N(mean, unbiased cov) fitted to each feature set, the FID of Heusel et al. (2017)."""
  a, b = _as_features(feats_a_NxD), _as_features(feats_b_MxD)
  return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@functools.partial(jax.jit, static_argnames=("exclude_self", "chunk_size"))
def _poly_row_sums(x, y, *, exclude_self: bool, chunk_size: int):
  """sum_j k(x_i, y_j) for k(x, y) = (x.y/d + 1)^3, leaving out j = i when x is y."""
  qc, ic = _chunks(x, chunk_size)
  d = x.shape[1]

  def step(args):
    c, idx = args
    k = (jnp.matmul(c, y.T, precision=_HIGHEST) / d + 1.0) ** 3
    if exclude_self:
      k = jnp.where(idx[:, None] == jnp.arange(y.shape[0])[None, :], 0.0, k)
    return jnp.sum(k, axis=1)

  return jax.lax.map(step, (qc, ic)).reshape(-1)[: x.shape[0]]


def _mmd2_poly(a, b, chunk_size: int) -> float:
  m, n = a.shape[0], b.shape[0]
  # Kernel entries in float32 as in Binkowski et al.'s code, but the millions of them summed in float64 on the host,
  # since MMD^2 is a small difference of large means.
  total = lambda x, y, self_: np.sum(np.asarray(_poly_row_sums(x, y, exclude_self=self_, chunk_size=chunk_size),
                                                dtype=np.float64))
  return float(total(a, a, True) / (m * (m - 1)) + total(b, b, True) / (n * (n - 1))
               - 2.0 * total(a, b, False) / (m * n))


def mmd2_unbiased_polynomial(a_MxD, b_NxD, *, chunk_size: int = CHUNK_SIZE) -> float:
  """MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(a_i,a_j) + 1/(n(n-1)) sum_{i!=j} k(b_i,b_j) - 2/(mn) sum_{i,j} k(a_i,b_j),
  k(x, y) = (x.y/d + 1)^3, the unbiased estimate of Binkowski et al. (2018); may be slightly negative."""
  a = jnp.asarray(_as_features(a_MxD), jnp.float32)
  b = jnp.asarray(_as_features(b_NxD), jnp.float32)
  if a.shape[0] < 2 or b.shape[0] < 2:
    raise ValueError("the unbiased MMD needs at least 2 samples per set")
  return _mmd2_poly(a, b, chunk_size)


def kid(feats_a, feats_b, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        chunk_size: int = CHUNK_SIZE) -> dict:
  """KID = mean over random subsets of MMD^2_u with k(x, y) = (x.y/d + 1)^3 (Binkowski et al. 2018), and its std."""
  a, b = _as_features(feats_a), _as_features(feats_b)
  m = min(subset_size, a.shape[0], b.shape[0])
  rng = np.random.default_rng(seed)
  a_dev, b_dev = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  estimates = []
  for _ in range(num_subsets):
    # Drawn in the order of the reference code: a's subset, then b's, each without replacement.
    ia = rng.choice(a.shape[0], m, replace=False)
    ib = rng.choice(b.shape[0], m, replace=False)
    estimates.append(_mmd2_poly(a_dev[ia], b_dev[ib], chunk_size))
  # std with ddof=0, as Binkowski et al. and torch-fidelity report it.
  return {"kid": float(np.mean(estimates)), "kid_std": float(np.std(estimates))}


def precision_recall(real_feats, fake_feats, *, k: int = 3, chunk_size: int = CHUNK_SIZE) -> dict:
  """precision = share of fakes in some ball B(real_i, r_i), recall = share of reals in some B(fake_j, r_j), with r the
  distance to the k-th nearest neighbour within the own set and "in" meaning d <= r (Kynkaanniemi et al. 2019)."""
  real, fake = _centered(_as_features(real_feats), _as_features(fake_feats))
  r_real = _kth_nearest_sq(real, k=k, chunk_size=chunk_size)
  r_fake = _kth_nearest_sq(fake, k=k, chunk_size=chunk_size)
  fake_in_real = _balls_holding(fake, real, r_real, chunk_size=chunk_size)
  real_in_fake = _balls_holding(real, fake, r_fake, chunk_size=chunk_size)
  return {"precision": float(np.mean(np.asarray(fake_in_real) > 0)),
          "recall": float(np.mean(np.asarray(real_in_fake) > 0))}


def density_coverage(real_feats, fake_feats, *, k: int = 5, chunk_size: int = CHUNK_SIZE) -> dict:
  """density = 1/(kM) sum_j sum_i 1[d(fake_j, real_i) <= r_i], coverage = 1/N sum_i 1[min_j d(real_i, fake_j) < r_i]
  (Naeem et al. 2020); r_i is real_i's k-th nearest-neighbour distance among the reals."""
  real, fake = _centered(_as_features(real_feats), _as_features(fake_feats))
  r_real = _kth_nearest_sq(real, k=k, chunk_size=chunk_size)
  fake_in_real = _balls_holding(fake, real, r_real, chunk_size=chunk_size)
  nearest_fake = _nearest_sq(real, fake, chunk_size=chunk_size)
  # Coverage compares with a strict <, density with <=, as the paper's reference implementation (clovaai/generative-
  # evaluation-prdc) does. A set scored against itself so has coverage 1 and density (k+1)/k: each ball holds its
  # centre and its k neighbours. Independent samples of the same distribution have density ~1.
  return {"density": float(np.sum(np.asarray(fake_in_real, dtype=np.float64)) / (k * fake.shape[0])),
          "coverage": float(np.mean(np.asarray(nearest_fake) < np.asarray(r_real)))}


def classifier_score(probs_NxC, *, splits: int = 10) -> dict:
  """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of p(y|x) over each of `splits` contiguous splits, the Inception
  Score of Salimans et al. (2016) computed with our classifier's softmax; mean and std over the splits."""
  p = np.asarray(probs_NxC, dtype=np.float64)
  n = p.shape[0]
  scores = []
  for s in range(splits):
    # The split bounds of the original code: every sample is used, the sizes differ by at most one.
    part = p[s * n // splits:(s + 1) * n // splits]
    py = part.mean(axis=0, keepdims=True)
    # 0 log 0 = 0: confident classifiers put exact zeros in the softmax.
    terms = np.where(part > 0, part * (np.log(np.where(part > 0, part, 1.0)) - np.log(np.where(py > 0, py, 1.0))), 0.0)
    scores.append(np.exp(np.mean(np.sum(terms, axis=1))))
  return {"classifier_score": float(np.mean(scores)), "classifier_score_std": float(np.std(scores))}


def class_stats(labels_N, num_classes: int = 10, *, threshold: float = 0.01) -> dict:
  """Histogram of predicted labels, classes whose share p_c exceeds threshold, and KL(p || uniform) = sum p log(p C)."""
  labels = np.asarray(labels_N).reshape(-1)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
  counts = np.bincount(labels, minlength=num_classes)
  p = counts / counts.sum()
  nonzero = p > 0
  # A class needs more than `threshold` of the samples to count as covered: a collapsed generator's few images that
  # the classifier gets wrong would otherwise add classes the generator never makes.
  return {"class_histogram": counts.tolist(), "classes_covered": int((p > threshold).sum()),
          "class_kl": float(np.sum(p[nonzero] * np.log(p[nonzero] * num_classes)))}


def generator_metrics(real_feats, fake_feats, fake_probs, *, num_classes: int = 10, k: int = 3, seed: int = 0,
                      chunk_size: int = CHUNK_SIZE) -> dict:
  """FID, KID, precision/recall (k), density/coverage (k=5), classifier score and class stats of argmax(fake_probs)."""
  probs = np.asarray(fake_probs)
  return {"fid": fid(real_feats, fake_feats),
          **kid(real_feats, fake_feats, seed=seed, chunk_size=chunk_size),
          **precision_recall(real_feats, fake_feats, k=k, chunk_size=chunk_size),
          # k=5 is Naeem et al.'s default; precision/recall keep Kynkaanniemi et al.'s k=3.
          **density_coverage(real_feats, fake_feats, k=5, chunk_size=chunk_size),
          **classifier_score(probs),
          **class_stats(np.argmax(probs, axis=1), num_classes)}
