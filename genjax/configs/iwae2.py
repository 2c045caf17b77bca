"""VAE / IWAE with two stochastic layers (Burda et al. 2015) on MNIST: x -> 200 -> 200 -> h1 (100) -> 100 -> 100 ->
h2 (50), tanh, the generative network mirrored, Bernoulli likelihood; trained on the k = 5 bound (k = 1: the VAE).

Command:   make train MODEL=iwae2
Expected:  blurry but recognizable samples; make eval's test NLL near the 1-layer iwae's after this short run.
           The paper's schedule and numbers: --config=burda2 (docs/reproductions.md).
Hardware:  2-core AMD EPYC CPU (no accelerator).
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "iwae2"
  c.model.latents = (100, 50)  # |h1|, |h2|
  c.model.hidden = (200, 200)  # x <-> h1
  c.model.hidden_top = (100, 100)  # h1 <-> h2
  c.model.activation = "tanh"
  c.optim.lr = 1e-3
  c.step.k = 5
  c.step.binarize = False  # True: dynamic binarization of every training batch
  c.train.steps = 4000
  return c
