"""MLP VAE of Kingma & Welling (2013) on MNIST: 784-400-20 encoder and 20-400-784 decoder, Bernoulli likelihood.

Command:   make train MODEL=vae_dense
Expected:  blurry but recognizable samples, faithful reconstructions; -ELBO 107 nats (train) and 106.6 (test).
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "vae_dense"
  c.model.latent_dim = 20
  c.model.hidden = (400,)
  c.model.activation = "relu"  # the paper's tanh also works ("tanh"); ReLU reaches a lower ELBO in this budget
  c.optim.lr = 1e-3
  c.step.beta = 1.0
  c.train.steps = 4000
  return c
