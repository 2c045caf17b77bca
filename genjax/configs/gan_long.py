"""The DCGAN of genjax/configs/gan.py trained for 18,000 steps instead of 4000: under 30 minutes of training on a
2-core CPU instead of 6.

Command:   make train MODEL=gan ARGS="--config=gan_long" WORKDIR=runs/gan_long
Expected:  make eval's scores in docs/reproductions.md (`make reproduce TARGETS=gan_long`, the goal FID <= 5), with
           the 2000-sample FID every 2000 steps in metrics.jsonl.
Hardware:  2-core AMD EPYC CPU; the wall time in docs/reproductions.md counts training and compilation, not the
           in-loop FID checks (nor, on a fresh checkout, training the evaluation's classifier first).

The same players, losses, Adam setting and batch as `gan`; its learning rate is held at 2e-3 until step 6000 and
then falls along a cosine to 0 at the last step, as the in-loop FID levels off by step 6000 at a constant rate
(docs/reproductions.md compares the two); the generator's average spans about 1000 updates (decay 0.999) from
update 4000, as the longer MLP GAN runs (`gan_mlp`, `cgan`) use; the samples' latents are not truncated, as the goal
is FID alone, which truncation raises.
"""

from genjax.configs import gan


def get_config():
  c = gan.get_config()
  c.model.truncation = 0.0
  c.step.ema_decay = 0.999
  c.step.ema_start = 4000
  c.train.steps = 18000
  c.optim.schedule = "cosine"  # held until decay_start, then a cosine to 0 at decay_steps
  c.optim.decay_start = 6000
  c.optim.decay_steps = 18000  # the last step
  c.train.sample_every = 2000
  c.train.checkpoint_every = 2000
  c.train.eval_every = 2000  # classifier FID of 2000 samples: the curve against wall time
  return c
