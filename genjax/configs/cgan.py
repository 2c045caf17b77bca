"""Conditional GAN with MLP players on MNIST: G(z, y) and D(x, y) read the one-hot digit label.

Command:   make train MODEL=cgan
Expected:  a 10x10 grid in runs/cgan/samples/ whose column k shows the digit k; make eval: about 98% of the
           samples classified as their label (docs/reproductions.md).
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "cgan"
  c.model.num_classes = 10
  c.model.latent_dim = 64
  c.model.spectral_norm = False  # divide each of D's kernels by its top singular value (Miyato et al. 2018)
  c.model.latent_dist = "normal"  # or "uniform": U[-1, 1]
  c.model.truncation = 0.0  # > 0: samples drawn from latents truncated to [-t, t] (gans.sampling_latent)
  c.model.gen_hidden = (256, 512)
  c.model.disc_hidden = (512, 256)
  c.model.disc_dropout = 0.0
  c.model.minibatch_std = False
  c.model.projection = True  # add <embed(y), h> to the logit (projection discriminator, Miyato & Koyama 2018)
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5
  c.optim.lr_g = c.optim.get_ref("lr") * 1.0  # follows optim.lr unless set on its own
  c.optim.lr_d = c.optim.get_ref("lr") * 1.0
  c.step.loss = "non_saturating"  # minimax | non_saturating | hinge | least_squares
  c.step.d_steps = 1
  c.step.feature_matching = False
  c.step.feature_mmd = False
  c.step.historical_averaging = 0.0
  c.step.r1 = 0.0  # gamma > 0: gamma / 2 x the R1 penalty ||grad_x D(x)||^2 on real images (Mescheder et al. 2018)
  # The generator's moving average draws the samples, over about 1000 updates from update 4000.
  c.step.ema_decay = 0.999
  c.step.ema_start = 4000
  c.train.batch_size = 64
  c.train.steps = 20000  # 6000 and 12000 steps left the label ignored more often (the 2026-12-06 conditional sweep)
  c.train.sample_every = 1000
  c.train.num_samples = 100  # a 10x10 grid: column k holds class k
  return c
