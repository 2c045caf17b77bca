"""Dense autoencoder on MNIST, the textbook formulation: h = sigmoid(W x + b), x_hat = sigmoid(W' h + b'), MSE.

Command:   make train MODEL=ae_dense
Expected:  test MSE about 0.012 (PSNR 20 dB), below 32-component PCA (0.017); sharp-edged, recognizable
           reconstructions in runs/ae_dense/samples/.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "ae_dense"
  c.model.code_dim = 32  # undercomplete; e.g. 1024 for an overcomplete code
  c.model.activation = "sigmoid"  # code nonlinearity s: sigmoid, relu, tanh or linear; the output is a sigmoid
  c.model.dropout = 0.0  # rate of dropout on the input of the code layer (the pixels), training only
  c.optim.lr = 1e-2  # sigmoid units learn slowly: test MSE at 2000 steps 0.037 with lr 1e-3, 0.0205 with 1e-2
  c.step.loss = "mse"  # or bce
  c.xla_cpu_ynn = "none"  # XLA:CPU: no YNNPACK; measured faster for this small model (genjax/xla.py)
  c.train.steps = 6000
  c.train.log_every = 200  # intervals that 8 divides: 8 steps per dispatch (see train.steps_per_dispatch)
  c.train.sample_every = 1000
  return c
