"""Autoencoder experiments: denoising, sparsity, linear AE vs PCA, and anomaly detection with inpainting.

Run one from the checkout's root with `make experiment NAME=<name> [QUICK=1]` (genjax.lab loads this file).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genjax import data, models, pictures
from genjax.lab import Lab, auroc, batched, experiment, plt, pooled_psnr, test_images


@experiment
def denoising(lab: Lab) -> dict:
  """A denoising AE per corruption: rows of noisy inputs, clean images and the denoised outputs, and PSNR.

  Command:  make experiment NAME=denoising
  Expected: PSNR noisy -> denoised on 2000 test images: mask 25% 15.9 -> 21.4 dB, mask 50% 12.9 -> 19.5 dB,
            Gaussian 0.5 9.4 -> 18.0 dB (3000 steps each).
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  dae = models.get("dae")
  settings = {"mask25": ("mask", 0.25), "mask50": ("mask", 0.5), "gaussian50": ("gaussian", 0.5)}
  x = test_images(n=2000)
  out, rows = {}, []
  for tag, (noise, level) in settings.items():
    state = lab.fit("dae", tag, steps=3000, quick_steps=200, **{"step.noise": noise, "step.noise_level": level})
    noisy = np.asarray(dae.corrupt(jnp.asarray(x), jax.random.PRNGKey(1), noise, level))
    denoised = batched(lambda v, state=state: dae.reconstruct(state, v), noisy)
    out[tag] = {"noise": noise, "level": level, "psnr_noisy": pooled_psnr(np.clip(noisy, 0, 1), x),
                "psnr_denoised": pooled_psnr(denoised, x), "psnr_clean_reconstruction":
                pooled_psnr(batched(lambda v, state=state: dae.reconstruct(state, v), x), x)}
    rows += [np.clip(noisy[:12], 0, 1), x[:12], denoised[:12]]
  pictures.save_grid(lab.figure("denoising"), np.concatenate(rows), ncol=12)
  return {"settings": out, "test_images": len(x), "figures": ["denoising.png"],
          "figure_rows": "per setting (mask25, mask50, gaussian50): noisy, clean, denoised"}


def _codes(family, state, x):
  return batched(lambda v: family.encode(state, v), x)


@experiment
def sparsity(lab: Lab) -> dict:
  """Code activations of a plain overcomplete AE and of the same AE with a KL-rho or an L1 sparsity penalty.

  Command:  make experiment NAME=sparsity
  Expected: 3000 steps each: 48% of the 1024 units active (> 0.1) in the plain AE, 16% with KL-rho (none dead),
            9% with L1 (697 never active); test MSE 0.0042, 0.0041, 0.0037.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  x = test_images(n=2000)
  results, codes = {}, {}
  runs = {"plain": ("ae_dense", {"model.code_dim": 1024}),
          "sparse_kl": ("sparse_ae", {"step.sparsity": "kl"}),
          "sparse_l1": ("sparse_ae", {"step.sparsity": "l1", "step.sparsity_weight": 1e-4})}
  for tag, (model, overrides) in runs.items():
    family = models.get(model)
    state = lab.fit(model, tag, steps=3000, quick_steps=200, **overrides)
    h = _codes(family, state, x)
    x_hat = batched(lambda v, f=family, s=state: f.reconstruct(s, v), x)
    codes[tag] = h
    active = np.abs(h) > 0.1  # a sigmoid unit counts as active above 0.1
    results[tag] = {"model": model, "code_dim": int(h.shape[1]),
                    "fraction_active": float(active.mean()),
                    "mean_abs_activation": float(np.abs(h).mean()),
                    "units_never_active": int((~active.any(0)).sum()),
                    "reconstruction_mse": float(np.mean((x_hat - x) ** 2))}
  pyplot = plt()
  fig, axes = pyplot.subplots(1, len(codes), figsize=(4.5 * len(codes), 3.2))
  for ax, (tag, h) in zip(axes, codes.items()):
    ax.hist(np.abs(h).ravel(), bins=50, range=(0, 1), log=True)
    ax.set_title(f"{tag}: {100 * results[tag]['fraction_active']:.1f}% of units active (> 0.1)")
    ax.set_xlabel("|code activation|")
  axes[0].set_ylabel("count (log)")
  fig.tight_layout()
  fig.savefig(lab.figure("sparsity"), dpi=100)
  pyplot.close(fig)
  return {**results, "figures": ["sparsity.png"]}


@experiment
def pca(lab: Lab) -> dict:
  """A linear AE finds the PCA subspace: equal MSE, small principal angles; a deep AE does better at the same size.

  Command:  make experiment NAME=pca
  Expected: test MSE at 16 dimensions: PCA 0.026860, linear AE 0.026861 (ratio 1.00001), largest principal angle
            0.15 degrees; the conv AE 0.0098.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  from scipy.linalg import subspace_angles
  k = 16
  train_x = data.load("mnist", "train").images.reshape(60000, -1).astype(np.float64) / 255.0
  x = test_images().reshape(10000, -1).astype(np.float64)
  mean = train_x.mean(0)
  _, _, vt = np.linalg.svd(train_x - mean, full_matrices=False)
  components = vt[:k].T  # [784, k]
  pca_hat = mean + (x - mean) @ components @ components.T
  pca_mse = float(np.mean((pca_hat - x) ** 2))

  linear = models.get("ae_linear")
  state = lab.fit("ae_linear", steps=10000, quick_steps=300, **{"model.code_dim": k})
  images = x.reshape(-1, 28, 28, 1).astype(np.float32)
  # `project` is the unclipped linear reconstruction; clipping to [0, 1] would beat PCA by about 5% unfairly.
  linear_mse = float(np.mean((batched(lambda v: linear.project(state, v), images).reshape(len(x), -1) - x) ** 2))
  decoder = np.asarray(linear.decoder_matrix(state), np.float64)  # [784, k]: the AE's reconstruction subspace
  angles = np.degrees(subspace_angles(decoder, components))

  deep = models.get("ae")
  deep_state = lab.fit("ae", "deep_ae", steps=2000, quick_steps=200, **{"model.code_dim": k})
  deep_mse = float(np.mean((batched(lambda v: deep.reconstruct(deep_state, v), images).reshape(len(x), -1) - x)
                           ** 2))

  # Top: PCA components; bottom: the linear AE's decoder columns (a basis of the same subspace, not the same basis).
  scale = lambda m: (m - m.min(0)) / np.maximum(m.max(0) - m.min(0), 1e-12)
  basis = np.concatenate([scale(components).T, scale(decoder).T]).reshape(2 * k, 28, 28, 1)
  pictures.save_grid(lab.figure("pca_bases"), basis, ncol=k)
  return {"code_dim": k, "pca_mse": pca_mse, "linear_ae_mse": linear_mse,
          "linear_over_pca": linear_mse / pca_mse, "deep_ae_mse": deep_mse,
          "principal_angles_deg": sorted(angles.tolist()), "max_principal_angle_deg": float(angles.max()),
          "figures": ["pca_bases.png"]}


@experiment
def anomaly(lab: Lab) -> dict:
  """An AE trained on MNIST reconstructs Fashion-MNIST badly (AUROC), and fills in the missing half of a digit.

  Command:  make experiment NAME=anomaly
  Expected: 2000 steps: AUROC 0.997 (mean per-pixel error 0.0098 on MNIST, 0.088 on Fashion-MNIST); sharp but
            often wrong inpainting, MSE on the hidden half 0.104 against 0.068 for the mean-image fill.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  ae = models.get("ae")
  state = lab.fit("ae", steps=2000, quick_steps=200)
  per_pixel = lambda v: jnp.mean((ae.reconstruct(state, v) - v) ** 2, axis=(1, 2, 3))
  mnist = test_images("mnist")
  fashion = test_images("fashion_mnist")
  score_mnist, score_fashion = batched(per_pixel, mnist), batched(per_pixel, fashion)
  pyplot = plt()
  fig, ax = pyplot.subplots(figsize=(6, 3.2))
  bins = np.linspace(0, np.quantile(score_fashion, 0.99), 60)
  ax.hist(score_mnist, bins, alpha=0.6, label="MNIST test (in distribution)")
  ax.hist(score_fashion, bins, alpha=0.6, label="Fashion-MNIST test")
  ax.set_xlabel("reconstruction MSE per pixel")
  ax.legend()
  fig.tight_layout()
  fig.savefig(lab.figure("anomaly_scores"), dpi=100)
  pyplot.close(fig)

  # Inpainting: keep the known top half, replace the unknown bottom half by the reconstruction, repeat.
  x = jnp.asarray(mnist[:1000])
  known = jnp.zeros_like(x).at[:, :14].set(1.0)
  fill = jnp.asarray(data.load("mnist", "train").images.mean(0), jnp.float32) / 255.0
  start = known * x + (1 - known) * fill
  inpaint = jax.jit(lambda v: jax.lax.fori_loop(0, 20, lambda _, u: known * x + (1 - known) * ae.reconstruct(state, u),
                                                 v))
  filled = inpaint(start)
  missing_mse = lambda v: float(jnp.sum(((v - x) * (1 - known)) ** 2) / jnp.sum(1 - known))
  masked_view = known * x + (1 - known) * 0.5
  pictures.save_grid(lab.figure("inpainting"), np.concatenate([x[:12], masked_view[:12], filled[:12]]), ncol=12)
  return {"auroc_fashion_vs_mnist": auroc(score_mnist, score_fashion),
          "mean_score": {"mnist": float(score_mnist.mean()), "fashion_mnist": float(score_fashion.mean())},
          "inpainting": {"missing": "bottom 14 rows", "iterations": 20, "images": int(len(x)),
                         "missing_mse_mean_image_fill": missing_mse(start), "missing_mse_inpainted":
                         missing_mse(filled)},
          "figures": ["anomaly_scores.png", "inpainting.png"],
          "figure_rows": "inpainting: original, bottom half hidden (grey), inpainted"}
