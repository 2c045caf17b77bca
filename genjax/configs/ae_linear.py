"""Linear autoencoder on MNIST (h = W x + b, x_hat = W' h + b', MSE): it learns the 16-d PCA subspace.

Command:   make train MODEL=ae_linear
Expected:  the PCA optimum: test MSE 0.0269, within 0.01% of 16-component PCA's, principal angles to the PCA
           subspace below 0.2 degrees; blurry, PCA-like reconstructions in runs/ae_linear/samples/.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "ae_linear"
  c.model.code_dim = 16
  c.model.dropout = 0.0
  # Measured on the 60k training images: Adam at constant lr 1e-3 for 2000 steps ends 4.4% above PCA's MSE, with
  # principal angles up to 77 degrees; this cosine schedule reaches PCA's MSE to 0.01% and every angle below 1 degree.
  c.optim.lr = 3e-3
  c.optim.schedule = "cosine"
  c.optim.decay_steps = 10000
  c.xla_cpu_ynn = "none"  # XLA:CPU: no YNNPACK; measured faster for this small model (genjax/xla.py)
  c.train.steps = 10000
  c.train.log_every = 400  # intervals that 16 divides: 16 steps per dispatch (see train.steps_per_dispatch)
  c.train.sample_every = 2000
  c.train.checkpoint_every = 2000
  return c
