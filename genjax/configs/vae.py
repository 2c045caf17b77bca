"""Convolutional VAE on MNIST: Bernoulli likelihood, 16-d Gaussian latent, analytic KL.

Command:   make train MODEL=vae
Expected:  blurry but recognizable samples and faithful reconstructions; training negative ELBO near 100 nats.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "vae"
  c.model.latent_dim = 16
  c.model.features = (32, 64)
  c.model.upsample = "transpose"  # 4x4 stride-2 transposed convs (nets.ConvTranspose4x4); or "subpixel"
  c.optim.lr = 1e-3
  c.step.beta = 1.0
  c.train.steps = 2000
  return c
