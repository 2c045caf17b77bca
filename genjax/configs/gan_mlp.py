"""The original GAN with MLP players on MNIST, non-saturating loss.

Command:   make train MODEL=gan_mlp
Expected:  recognizable digits of all ten classes with salt-and-pepper noise in runs/gan_mlp/samples/.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "gan_mlp"
  c.model.latent_dim = 64
  c.model.spectral_norm = False  # divide each of D's kernels by its top singular value (Miyato et al. 2018)
  c.model.latent_dist = "normal"  # or "uniform": U[-1, 1]
  c.model.truncation = 0.0  # > 0: samples drawn from latents truncated to [-t, t] (gans.sampling_latent)
  c.model.gen_hidden = (256, 512)
  c.model.disc_hidden = (512, 256)
  c.model.disc_dropout = 0.0
  c.model.minibatch_std = False  # append the minibatch standard deviation to D's last hidden layer
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5
  # Separate learning rates of G and D; a derived reference follows optim.lr unless set on its own.
  c.optim.lr_g = c.optim.get_ref("lr") * 1.0
  c.optim.lr_d = c.optim.get_ref("lr") * 1.0
  c.step.loss = "non_saturating"  # minimax | non_saturating | hinge | least_squares
  c.step.d_steps = 1  # discriminator updates per generator update, each on its own batch of real images
  c.step.feature_matching = False  # G matches the mean of D's features on real images (Salimans et al. 2016)
  c.step.feature_mmd = False  # G matches the distribution of D's features on real images (their MMD^2)
  c.step.historical_averaging = 0.0  # weight of ||theta - mean of past theta||^2 for both players
  c.step.r1 = 0.0  # gamma > 0: gamma / 2 x the R1 penalty ||grad_x D(x)||^2 on real images (Mescheder et al. 2018)
  # The generator's moving average draws the samples, over about 1000 updates from update 4000.
  c.step.ema_decay = 0.999
  c.step.ema_start = 4000
  c.train.batch_size = 64
  c.train.steps = 12000  # twice the old 6000, with the average: half the FID (the 2026-12-06 conditional sweep)
  c.train.sample_every = 1000
  return c
