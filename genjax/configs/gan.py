"""DCGAN on MNIST with the non-saturating loss.

Command:   make train MODEL=gan
Expected:  digits of every class in runs/gan/samples/, about eight in ten clearly recognizable (docs/gan_samples.png);
           make eval's scores in docs/reproductions.md (`make reproduce TARGETS=gan`).
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "gan"
  c.model.latent_dim = 64
  c.model.spectral_norm = False  # divide each of D's kernels by its top singular value (Miyato et al. 2018)
  c.model.gen_features = (128, 64)
  # Four stride-2 layers in D (28 -> 14 -> 7 -> 4 -> 2) with the minibatch standard deviation appended to its last
  # map: the deeper D judges shapes better, the batch statistic keeps the classes even (a third layer alone let 9s
  # take 19% of the samples; the statistic alone changed little). The third layer with the statistic about halved
  # FID at 3000 steps of batch 128, over two seeds; the fourth lowered it again, from 16.1 to 12.3 at 6000 steps of
  # batch 64, for about 1.4x the time per step (benchmarks/stabilizers.py: d3_mbstd, d3_mbstd_b64, d4_mbstd_b64;
  # the comparison in docs/reproductions.md).
  c.model.disc_features = (32, 64, 128, 256)
  c.model.upsample = "transpose"  # 4x4 stride-2 transposed convs (nets.ConvTranspose4x4); or "subpixel"
  c.model.latent_dist = "normal"  # or "uniform": U[-1, 1]
  c.model.minibatch_std = True  # append the minibatch standard deviation to D's last feature map
  # Samples (pictures, make eval) are drawn from latents truncated to [-1.5, 1.5] (BigGAN's truncation trick; training
  # draws N(0, I)): fewer malformed digits for less variety. On the 4000-step default, against untruncated latents:
  # precision 0.65 -> 0.72, recall 0.82 -> 0.73, FID 11.6 -> 18.1 (make eval --truncation 0 scores it without;
  # docs/reproductions.md). 0: off. Chosen on MNIST: on Fashion-MNIST it costs recall (0.60 -> 0.37) and FID (29.7 ->
  # 89.8), so train that with --config.model.truncation=0.
  c.model.truncation = 1.5
  # Ten times DCGAN's 2e-4: at this size and budget FID falls about twice as fast per step and lower; 4e-3 does
  # worse again (benchmarks/stabilizers.py; the comparison in docs/reproductions.md).
  c.optim.lr = 2e-3
  c.optim.b1 = 0.5  # DCGAN's Adam setting; momentum 0.9 makes the adversarial game oscillate
  # Adam's b2 0.9 (as WGAN-GP) rather than 0.999: the squared-gradient average follows the players' changing
  # gradients within about 10 steps; lower FID at this budget (benchmarks/stabilizers.py, docs/reproductions.md).
  c.optim.b2 = 0.9
  # Separate learning rates of G and D; a derived reference follows optim.lr unless set on its own.
  c.optim.lr_g = c.optim.get_ref("lr") * 1.0
  c.optim.lr_d = c.optim.get_ref("lr") * 1.0
  c.step.loss = "non_saturating"  # minimax | non_saturating | hinge | least_squares
  c.step.d_steps = 1  # discriminator updates per generator update, each on its own batch of real images
  c.step.feature_matching = False  # G matches the mean of D's features on real images (Salimans et al. 2016)
  c.step.feature_mmd = False  # G matches the distribution of D's features on real images (their MMD^2)
  c.step.historical_averaging = 0.0  # weight of ||theta - mean of past theta||^2 for both players
  c.step.r1 = 0.0  # gamma > 0: gamma / 2 x the R1 penalty ||grad_x D(x)||^2 on real images (Mescheder et al. 2018)
  # The generator's moving average draws the samples (make eval --raw_generator scores the generator itself): a
  # window of about 200 updates (12,800 images) from update 2000.
  c.step.ema_decay = 0.995
  c.step.ema_start = 2000
  # xla_cpu_ynn: the default `dots` (genjax/xla.py). With the sub-pixel generator `none` was 5% faster; with the
  # transposed convs `dots` is (1322 against 1289 images/s at batch 128, four alternating rounds).
  # Batch 64 rather than 128 for twice the steps in about the same time: at this budget the players gain more from
  # updates than from larger batches (with D's three layers: FID 16.1 after 6000 steps of 64 against 21.7 after
  # 3000 of 128; benchmarks/stabilizers.py d3_mbstd_b64). 4000 steps fit the 6 minutes with D's fourth layer; its
  # in-loop FID was about level from step 4000 to 6000.
  c.train.batch_size = 64
  c.train.steps = 4000
  c.train.sample_every = 500
  return c
