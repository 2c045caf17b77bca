"""Burda, Grosse and Salakhutdinov (2015), Table 1, MNIST: the 1-stochastic-layer VAE (k = 1) and IWAE (k = 5, 50).

Command:   make train MODEL=iwae ARGS="--config=burda --config.step.k=50" WORKDIR=runs/burda_k50
           (k = 1 is the VAE: the k-sample bound at k = 1 is the ELBO)
Expected:  test NLL (make eval, k = 5000 on all 10,000 test images) 86.76 (VAE), 85.54 (k = 5), 84.78 (k = 50) nats
           in the paper, after its 3280 epochs; docs/reproductions.md has what this CPU reached and at what cost.
Hardware:  the paper's schedule is 3280 epochs at batch 20: about 9.8M steps, hours (k = 1) to days (k = 50) on a
           2-core CPU; see the docs for the measured images/s and the shorter schedules.

The architecture: x -> two deterministic tanh layers of 200 units -> 50 Gaussian units, the decoder mirrored,
Bernoulli likelihood; dynamic binarization (each use of a training image draws its pixels anew); Adam with b1 0.9,
b2 0.999, eps 1e-4, batch 20; lr 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7 (optim.schedule = burda).
"""

from genjax.configs import iwae


def get_config():
  c = iwae.get_config()
  c.model.latent_dim = 50
  c.model.hidden = (200, 200)
  c.model.activation = "tanh"
  c.optim.lr = 1e-3
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-4
  c.optim.schedule = "burda"
  c.optim.epoch_steps = 3000  # 60,000 training images / batch 20
  c.step.k = 1
  c.step.binarize = True
  c.train.batch_size = 20
  c.train.steps = 3280 * 3000  # the paper's 3280 epochs
  c.train.log_every = 1000
  c.train.sample_every = 30000
  c.train.checkpoint_every = 30000
  c.train.eval_every = 300000  # test -ELBO of 1000 images every 100 epochs: the curve, and the best checkpoint
  return c
