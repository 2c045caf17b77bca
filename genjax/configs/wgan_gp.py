"""WGAN-GP on MNIST: MLP players, gradient penalty 10, 5 critic updates, Adam(4e-4, b1=0.5, b2=0.9).

Command:   make train MODEL=wgan_gp
Expected:  digits of every class in runs/wgan_gp/samples/, most recognizable, many speckled.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "wgan_gp"
  c.model.latent_dim = 64
  c.model.spectral_norm = False  # divide each of D's kernels by its top singular value (Miyato et al. 2018)
  c.model.latent_dist = "normal"
  c.model.truncation = 0.0  # > 0: samples drawn from latents truncated to [-t, t] (gans.sampling_latent)
  c.model.gen_hidden = (256, 512)
  c.model.disc_hidden = (512, 256)
  # Four times the paper's 1e-4: FID 36 against 141 after the same 6000 steps (the comparison in
  # docs/reproductions.md).
  c.optim.lr = 4e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.9
  c.optim.lr_g = c.optim.get_ref("lr") * 1.0  # follows optim.lr unless set on its own
  c.optim.lr_d = c.optim.get_ref("lr") * 1.0
  c.step.n_critic = 5  # critic updates per generator update; the loop gathers batch_size x n_critic images
  c.step.gp_weight = 10.0  # lambda
  # No generator average: over 6000 updates the generator still improves fast, and an average over about 1000 of
  # them from update 2000 scored worse than the generator itself (the comparison in docs/reproductions.md).
  c.step.ema_decay = 0.0  # > 0: the generator's exponential moving average draws the samples
  c.step.ema_start = 0  # generator updates before the average starts (until then it is the generator itself)
  c.train.batch_size = 64
  c.train.steps = 6000
  c.train.sample_every = 1000
  return c
