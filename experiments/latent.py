"""Latent-space experiments: the 2-D VAE manifold, and interpolation in AE, VAE and GAN latents.

Run one from the checkout's root with `make experiment NAME=<name> [QUICK=1]` (genjax.lab loads this file).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from genjax import config as cfg
from genjax import data, models, pictures
from genjax.lab import Lab, batched, experiment, plt, test_images
from genjax.models import gans


@experiment
def latent2d(lab: Lab) -> dict:
  """A VAE with a 2-D latent: digits decoded over a grid of z, and the test set's posterior means by label.

  Command:  make experiment NAME=latent2d
  Expected: 6000 steps, trained in 69 s; test -ELBO 153.5, nearest-class-centroid accuracy in z 0.62.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  model = "vae_dense"
  family = models.get(model)
  state = lab.fit(model, steps=6000, quick_steps=300, **{"model.latent_dim": 2})
  n = 20
  # Grid points at Gaussian quantiles, so equal areas of the prior get equal room (Kingma & Welling, fig. 4).
  q = norm.ppf(jnp.linspace(0.05, 0.95, n))
  z = jnp.stack(jnp.meshgrid(q, -q), -1).reshape(-1, 2)  # rows top to bottom: z2 decreasing
  images = np.asarray(jax.jit(family.decode)(state, z))
  pictures.save_grid(lab.figure("manifold"), images, ncol=n)

  x = test_images()
  labels = data.load("mnist", "test").labels[:len(x)]
  mean = batched(lambda x: family.encode(state, x)[0], x)
  pyplot = plt()
  fig, ax = pyplot.subplots(figsize=(6, 5))
  points = ax.scatter(mean[:, 0], mean[:, 1], c=labels, cmap="tab10", s=2, vmin=-0.5, vmax=9.5)
  fig.colorbar(points, ticks=range(10), label="digit")
  ax.set_xlabel("$z_1$ (posterior mean)")
  ax.set_ylabel("$z_2$ (posterior mean)")
  ax.set_title("MNIST test set in the 2-D latent space")
  fig.tight_layout()
  fig.savefig(lab.figure("encodings"), dpi=100)
  pyplot.close(fig)

  per = batched(lambda x: family.eval_step(state, {"image": x, "label": jnp.zeros(len(x), jnp.int32)},
                                           jax.random.PRNGKey(0)), x)
  # How separated the classes are: accuracy of the nearest class centroid in z.
  centroids = np.stack([mean[labels == c].mean(0) for c in range(10)])
  nearest = np.argmin(((mean[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
  return {"model": model, "latent_dim": 2, "test_neg_elbo": float(np.mean(per["neg_elbo"])),
          "test_kl": float(np.mean(per["kl"])), "nearest_centroid_accuracy": float(np.mean(nearest == labels)),
          "figures": ["manifold.png", "encodings.png"]}


def _lerp(a, b, steps: int):
  t = jnp.linspace(0.0, 1.0, steps)[:, None]
  return (1 - t) * a[None] + t * b[None]


def _slerp(a, b, steps: int):
  """Spherical interpolation: keeps Gaussian latents at a typical norm (White 2016)."""
  t = jnp.linspace(0.0, 1.0, steps)[:, None]
  cos = jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b))
  omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  return (jnp.sin((1 - t) * omega) * a + jnp.sin(t * omega) * b) / jnp.sin(omega)


@experiment
def interpolation(lab: Lab) -> dict:
  """Decodes straight lines between the codes of two test digits (AE, VAE), and arcs between two GAN latents (drawn
  as its samples are: truncated by default).

  Command:  make experiment NAME=interpolation
  Expected: smooth morphs from all three (ae and vae 2000 steps, gan its default 4000): the largest change between
            neighbouring frames, relative to the endpoints' difference, for each model in results.json
            (largest_step_over_total_change; docs/experiments.md has the measured values).
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  steps, pairs = 10, 6
  x = test_images(n=2 * pairs)
  rows, smooth = {}, {}
  for model in ("ae", "vae"):
    family = models.get(model)
    state = lab.fit(model, steps=2000, quick_steps=200)
    h = family.encode(state, jnp.asarray(x))
    h = h[0] if isinstance(h, tuple) else h  # the VAE's posterior mean
    path = jnp.concatenate([_lerp(h[2 * i], h[2 * i + 1], steps) for i in range(pairs)])
    rows[model] = np.asarray(family.decode(state, path))
  gan = models.get("gan")
  state = lab.fit("gan", steps=cfg.model_config("gan").train.steps, quick_steps=200)
  z = gans.sampling_latent(jax.random.PRNGKey(0), 2 * pairs, state.spec)
  path = jnp.concatenate([_slerp(z[2 * i], z[2 * i + 1], steps) for i in range(pairs)])
  rows["gan"] = np.asarray(gan.decode(state, path))
  for model, images in rows.items():
    pictures.save_grid(lab.figure(f"interpolation_{model}"), images, ncol=steps)
    # Mean pixel change between neighbouring frames, relative to the change between the endpoints.
    frames = images.reshape(pairs, steps, -1)
    step_change = np.abs(np.diff(frames, axis=1)).mean(-1)
    total = np.abs(frames[:, -1] - frames[:, 0]).mean(-1)
    smooth[model] = float(np.mean(step_change.max(1) / np.maximum(total, 1e-6)))
  return {"steps": steps, "pairs": pairs, "largest_step_over_total_change": smooth,
          "figures": [f"interpolation_{m}.png" for m in rows]}
