"""The DCGAN of genjax/configs/gan.py with D's three conv layers, trained for 12,000 steps of batch 128 (six times
the images of the default's 4000 of 64): under 30 minutes of training on a 2-core CPU instead of 6.

Command:   make train MODEL=gan ARGS="--config=gan_long" WORKDIR=runs/gan_long
Expected:  make eval's scores in docs/reproductions.md (`make reproduce TARGETS=gan_long`, the goal FID <= 5), with
           the 2000-sample FID every 2000 steps in metrics.jsonl.
Hardware:  2-core AMD EPYC CPU; the wall time in docs/reproductions.md counts training and compilation, not the
           in-loop FID checks (nor, on a fresh checkout, training the evaluation's classifier first).

The same generator, losses, learning rate and Adam setting as `gan`, at batch 128 and with D's first three layers
(the default before it gained a fourth); the generator's average spans about 1000 updates (decay 0.999) from update
4000, as the longer MLP GAN runs (`gan_mlp`, `cgan`) use.
"""

from genjax.configs import gan


def get_config():
  c = gan.get_config()
  # The batch and D that gan.py had until 2026-12-06, with which this config was measured.
  c.train.batch_size = 128
  c.model.disc_features = (32, 64, 128)
  c.step.ema_decay = 0.999
  c.step.ema_start = 4000
  c.train.steps = 12000
  c.train.sample_every = 1000
  c.train.checkpoint_every = 2000
  c.train.eval_every = 2000  # classifier FID of 2000 samples: the curve against wall time
  return c
