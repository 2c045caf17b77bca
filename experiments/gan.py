"""DCGAN on MNIST with the non-saturating loss.

Command:   make train MODEL=gan
Expected:  clearly recognizable digits of every class in runs/gan/samples/ (see the README for the picture).
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time and images/s are in the README.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "gan"
  c.model.latent_dim = 64
  c.model.gen_features = (128, 64)
  c.model.disc_features = (32, 64)
  c.model.upsample = "subpixel"
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5  # DCGAN's Adam setting; momentum 0.9 makes the adversarial game oscillate
  c.step.loss = "non_saturating"
  c.train.steps = 3000
  c.train.sample_every = 250
  return c
