"""Generator experiments scored by a classifier trained here: mode collapse and its remedy, GMMN vs GAN.

Run one from the checkout's root with `make experiment NAME=<name> [QUICK=1]` (genjax.lab loads this file).
"""

from __future__ import annotations

import jax
import numpy as np

from genjax import classifier, metrics, models, pictures
from genjax.lab import Lab, experiment, plt

NUM_SAMPLES = 10000
# Settings of the mode_collapse experiment: (model, overrides) of the collapsing run and of the same run with a remedy,
# each for 24,000 steps (twice gan_mlp's default). A discriminator 10x slower than the generator lets G collapse onto
# one blob. The remedy combines three of the course's fixes: G matches the distribution of D's features on real
# images (their MMD^2, step.feature_mmd; matching their mean, Salimans et al.'s feature matching, does less), the
# minibatch standard deviation lets D see a batch without variety, and 5 D steps per G step make up for D's slow
# rate. The remedies alone and combined, at 3000, 12000 and 24000 steps:
# benchmarks/results/*-mode-collapse-remedies.json.
COLLAPSE = ("gan_mlp", {"optim.lr_d": 2e-5})
REMEDY = ("gan_mlp", {"optim.lr_d": 2e-5, "step.feature_mmd": True, "model.minibatch_std": True, "step.d_steps": 5})
STEPS = 24000  # benchmarks/reproduce.py's mode_collapse_* targets train these settings for as long


def _samples(model: str, state, n: int = NUM_SAMPLES) -> np.ndarray:
  sample = jax.jit(models.get(model).sample, static_argnums=2)
  return np.concatenate([np.asarray(sample(state, jax.random.PRNGKey(i), 1000)) for i in range(n // 1000)])


def _panel(lab: Lab, name: str, runs: dict) -> None:
  """Sample grids and predicted-class histograms, one column per run."""
  pyplot = plt()
  fig, axes = pyplot.subplots(2, len(runs), figsize=(4 * len(runs), 7), squeeze=False)
  for col, (tag, (images, stats)) in enumerate(runs.items()):
    axes[0, col].imshow(pictures.grid(images[:100], ncol=10)[..., 0], cmap="gray")
    axes[0, col].set_title(f"{tag}: {stats['classes_covered']}/10 classes")
    axes[0, col].axis("off")
    axes[1, col].bar(range(10), stats["class_histogram"])
    axes[1, col].set_xticks(range(10))
    axes[1, col].set_xlabel(f"predicted digit (KL to uniform {stats['class_kl']:.2f})")
  fig.tight_layout()
  fig.savefig(lab.figure(name), dpi=100)
  pyplot.close(fig)


def _compare(lab: Lab, name: str, runs: dict) -> dict:
  clf = classifier.load("mnist", quiet=lab.quiet)
  out, panels = {}, {}
  for tag, (model, overrides, steps, quick_steps) in runs.items():
    state = lab.fit(model, tag, steps=steps, quick_steps=quick_steps, **overrides)
    images = _samples(model, state)
    stats = metrics.class_stats(classifier.predict(clf, images))
    out[tag] = {"model": model, "overrides": overrides, **stats}
    panels[tag] = (images, stats)
  _panel(lab, name, panels)
  return {**out, "samples": NUM_SAMPLES, "classifier_test_accuracy": classifier.accuracy(clf, "mnist"),
          "figures": [f"{name}.png"]}


@experiment
def mode_collapse(lab: Lab) -> dict:
  """The same GAN with and without a remedy; the classifier counts the digit classes it generates.

  Command:  make experiment NAME=mode_collapse
  Expected: 24000 steps each: collapsed, a few classes of 10; the remedy, 10 classes (KL to uniform near 0.04);
            make reproduce's runs of the same settings are in docs/reproductions.md.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  return _compare(lab, "mode_collapse", {"collapsed": (*COLLAPSE, STEPS, 300), "remedy": (*REMEDY, STEPS, 300)})


@experiment
def direct_vs_adversarial(lab: Lab) -> dict:
  """A generator trained directly on MMD (GMMN) against one trained by an adversary (MLP GAN).

  Command:  make experiment NAME=direct_vs_adversarial
  Expected: gmmn (4000 steps, 637 s): all 10 classes, KL to uniform 0.05; gan_mlp (6000 steps): all 10 classes,
            KL 0.18, 0s and 6s under-produced.
  Hardware: 2-core AMD EPYC CPU (no accelerator); results.json records the wall time, each model's steps,
            training time and images/s, and the software and device.
  """
  return _compare(lab, "direct_vs_adversarial",
                  {"gmmn": ("gmmn", {}, 4000, 300), "gan_mlp": ("gan_mlp", {}, 6000, 300)})
