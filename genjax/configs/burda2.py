"""Burda, Grosse and Salakhutdinov (2015), Table 1, MNIST: the 2-stochastic-layer VAE (k = 1) and IWAE (k = 50).

Command:   make train MODEL=iwae2 ARGS="--config=burda2 --config.step.k=50" WORKDIR=runs/burda2_k50
Expected:  test NLL (make eval, k = 5000 on all 10,000 test images) 85.33 (VAE) and 82.90 (k = 50) nats in the
           paper, after its 3280 epochs; docs/reproductions.md has the measured cost on this CPU.
Hardware:  3280 epochs at batch 20 (about 9.8M steps): days on a 2-core CPU; see the docs.

The training is the 1-layer model's (genjax/configs/burda.py): dynamic binarization, Adam (0.9, 0.999, eps 1e-4),
batch 20, lr 1e-3 * 10^(-i/7) for 3^i epochs, i = 0..7.
"""

from genjax.configs import burda, iwae2


def get_config():
  c = iwae2.get_config()
  paper = burda.get_config()
  c.optim = paper.optim
  c.train = paper.train
  c.step.k = 1
  c.step.binarize = True
  return c
