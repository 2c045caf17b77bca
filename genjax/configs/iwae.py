"""Importance-weighted autoencoder (Burda et al. 2015) on MNIST: vae_dense's network (784-400-20 ReLU MLPs, one
stochastic layer), trained on the k = 5 importance-weighted bound, so the two differ only in the objective.

Command:   make train MODEL=iwae
Expected:  samples like vae_dense's; train -L_5 104 nats, -ELBO 108; test L_1000 NLL 1.3 nats below vae_dense's.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "iwae"
  c.model.latent_dim = 20
  c.model.hidden = (400,)
  c.model.activation = "relu"
  c.optim.lr = 1e-3
  c.step.k = 5
  c.train.steps = 4000
  return c
