"""genjax.eval.conditional: label accuracy counts the samples the classifier gives the label they were drawn for."""

import jax
import numpy as np
from test_eval_run import feature_net, trained  # noqa: F401 -- feature_net is a fixture

from genjax import data
from genjax.eval import conditional, restore


def test_label_accuracy_counts_the_samples_classified_as_their_label(feature_net, tmp_path, monkeypatch):  # noqa: F811
  run = restore.load_run(trained(tmp_path, "cvae"))
  test = data.load("mnist", "test")
  bank = jax.numpy.asarray(np.stack([test.images[test.labels == k][:5] for k in range(10)]) / 255.0)  # [10, 5, ...]

  def real_digits(shift):  # "samples" that are test digits of class label + shift
    return lambda state, rng, labels: bank[(labels + shift) % 10, jax.numpy.arange(labels.shape[0]) % 5]

  monkeypatch.setattr(run, "family", run.family._replace(sample_class=real_digits(0)))
  right = conditional.label_accuracy(run, "mnist", 250, seed=0, batch=100)
  monkeypatch.setattr(run, "family", run.family._replace(sample_class=real_digits(1)))
  wrong = conditional.label_accuracy(run, "mnist", 250, seed=0, batch=100)
  assert right > 0.8 and wrong < 0.2, (right, wrong)
