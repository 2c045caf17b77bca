"""WGAN-GP on MNIST: MLP players, gradient penalty 10, 5 critic updates, Adam(1e-4, b1=0.5, b2=0.9).

Command:   make train MODEL=wgan_gp
Expected:  thick-stroked, blobby digit shapes of every class in runs/wgan_gp/samples/.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "wgan_gp"
  c.model.latent_dim = 64
  c.model.spectral_norm = False  # divide each of D's kernels by its top singular value (Miyato et al. 2018)
  c.model.latent_dist = "normal"
  c.model.gen_hidden = (256, 512)
  c.model.disc_hidden = (512, 256)
  c.optim.lr = 1e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.9
  c.optim.lr_g = c.optim.get_ref("lr") * 1.0  # follows optim.lr unless set on its own
  c.optim.lr_d = c.optim.get_ref("lr") * 1.0
  c.step.n_critic = 5  # critic updates per generator update; the loop gathers batch_size x n_critic images
  c.step.gp_weight = 10.0  # lambda
  # The generator's moving average draws the samples (make eval --raw_generator scores the generator itself): a
  # window of about 1000 generator updates from update 2000. It does not change training, so one run scores both.
  c.step.ema_decay = 0.999
  c.step.ema_start = 2000
  c.train.batch_size = 64
  c.train.steps = 6000
  c.train.sample_every = 1000
  return c
