"""GMMN+AE (Li et al. 2015): a GMMN generating the codes of a pretrained, frozen autoencoder, decoded to images.
Codes are centered and divided by their root mean standard deviation, so bandwidths are in code-space standard
deviations; the generator is 10-d uniform -> 64-256-256 ReLU -> code (linear).

Command:   make train MODEL=ae_dense && make train MODEL=gmmn WORKDIR=runs/gmmn_ae ARGS=--config=gmmn_ae
           (`--config` takes a config's name in genjax.configs, or the path of a file of your own)
Expected:  smooth strokes without gmmn's speckle; about half clear digits, the rest overlays; MMD^2 about 0.002.
Hardware:  2-core AMD EPYC CPU (no accelerator); wall time in docs/models.md#default-runs.
"""

from genjax import config as cfg


def get_config():
  c = cfg.base()
  c.model.name = "gmmn"
  c.model.noise = "uniform"
  c.model.noise_dim = 10
  c.model.hidden = (64, 256, 256)
  # Any genjax workdir of a family with encode and decode. Measured at 8000 steps: on runs/ae (the conv AE, 16-d
  # codes) nearly every sample is a clean digit, at 9400 images/s; on runs/ae_dense about half, at 33000 images/s.
  c.model.ae_workdir = "runs/ae_dense"
  c.optim.lr = 3e-3  # at 4000 steps visibly more digits than 1e-3; batch 1000 did not help
  # In code-space standard deviations. For ae_dense's 32-d codes the median distance between two codes is 7.9 and
  # that to the nearest of 500 is 4: bandwidths below 1 see no pair, so 0.25-4 left shapes worse than 1-16.
  c.step.bandwidths = (1.0, 2.0, 4.0, 8.0, 16.0)
  c.train.batch_size = 500
  c.train.steps = 8000
  return c
