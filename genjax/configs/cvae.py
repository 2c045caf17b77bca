"""Conditional MLP VAE on MNIST: the label's one-hot joins the encoder input and the latent; 784-400-8.

Command:   make train MODEL=cvae
Expected:  a 10 x 10 sample grid whose column j shows mostly digit j in varied styles; -ELBO(x | y) 109 nats.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "cvae"
  # The latent and the label compete for the class: measured at 4000 steps, latent 20 gives -ELBO(x | y) 103 but
  # columns of mixed digits; 8 gives 109 with columns mostly right; 2 gives 134 and every sample its column's digit.
  c.model.latent_dim = 8
  c.model.hidden = (400,)
  c.model.activation = "relu"
  c.model.num_classes = 10
  c.optim.lr = 1e-3
  c.step.beta = 1.0
  c.train.steps = 4000
  c.train.num_samples = 100  # a 10 x 10 grid: labels arange(100) % 10 put one class in each column
  return c
