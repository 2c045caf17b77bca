"""Deep convolutional undercomplete autoencoder on MNIST (784 pixels -> 16-d code), Bernoulli cross-entropy loss.

Command:   make train MODEL=ae
Expected:  reconstructions in runs/ae/samples/ that keep each digit's identity and stroke; test MSE about 0.01.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "ae"
  c.model.code_dim = 16
  c.model.features = (32, 64)
  c.model.upsample = "transpose"  # 4x4 stride-2 transposed convs (nets.ConvTranspose4x4); or "subpixel"
  c.model.dropout = 0.0  # rate of dropout on the features feeding the code layer, training only
  c.optim.lr = 1e-3
  c.step.loss = "bce"  # MSE on a sigmoid output saturates: measured stuck at all-black (MSE 0.11) from step 50
  c.train.steps = 2000
  return c
