"""Generative moment matching network (Li et al. 2015) on MNIST pixels: 10-d uniform noise -> 64-256-256-1024 ReLU
-> 784 sigmoid, trained on the unbiased MMD^2 with Gaussian kernels of bandwidths 2, 5, 10, 20, 40 and 80.

Command:   make train MODEL=gmmn
Expected:  recognizable but speckled digits of most classes, a few blobs; training MMD^2 about 0.004.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "gmmn"
  c.model.noise = "uniform"
  c.model.noise_dim = 10
  c.model.hidden = (64, 256, 256, 1024)
  c.model.ae_workdir = ""  # set to an autoencoder's workdir for GMMN+AE (genjax/configs/gmmn_ae.py)
  c.optim.lr = 1e-3
  c.step.bandwidths = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
  c.train.batch_size = 500  # the MMD compares whole batches: larger ones see more of the distribution
  c.train.steps = 4000
  return c
