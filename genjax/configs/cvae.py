"""Conditional MLP VAE on MNIST: the label's one-hot joins the encoder input and the latent; 784-512-512-8.

Command:   make train MODEL=cvae
Expected:  a 10 x 10 sample grid whose column j shows digit j in varied styles; make eval: about 97% of the samples
           classified as their label (docs/reproductions.md).
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "cvae"
  # The latent and the label compete for the class: the ELBO is higher when the class is left to the label (z then
  # saves the KL of encoding it), but a short run stops before the decoder learns to read the label. Two hidden
  # layers and 16000 steps let it learn to (label accuracy and the runs that chose this:
  # benchmarks/results/*-2026-12-06-conditional-sweep.json).
  c.model.latent_dim = 8
  c.model.hidden = (512, 512)
  c.model.activation = "relu"
  c.model.num_classes = 10
  c.optim.lr = 1e-3
  c.step.beta = 1.0
  c.train.steps = 16000
  c.train.num_samples = 100  # a 10 x 10 grid: labels arange(100) % 10 put one class in each column
  return c
