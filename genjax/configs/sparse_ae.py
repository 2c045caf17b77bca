"""Sparse overcomplete autoencoder on MNIST: 1024 sigmoid code units, MSE plus a KL(rho || rho_hat) penalty.

Command:   make train MODEL=sparse_ae
Expected:  test MSE about 0.006; mean code activation 0.056 (rho = 0.05), 14% of code units above 0.1 per
           image, no dead units; near-exact reconstructions in runs/sparse_ae/samples/.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "sparse_ae"
  c.model.code_dim = 1024
  c.model.activation = "sigmoid"
  c.model.dropout = 0.0
  c.optim.lr = 3e-3
  c.step.loss = "mse"
  c.step.sparsity = "kl"  # or l1: sparsity_weight * sum_j |h_j|
  c.step.sparsity_weight = 1e-3
  c.step.rho = 0.05
  c.train.steps = 2000
  c.train.log_every = 200  # intervals that 8 divides: 8 steps per dispatch (see train.steps_per_dispatch)
  c.train.sample_every = 1000
  return c
