"""A short training run for the scale-out tests, run in its own process so that it can have simulated devices
(XLA_FLAGS) or join a multi-process runtime (GENJAX_COORDINATOR...). Process 0 writes the final arrays to OUT.npz.

    python tests/scaleout_run.py MODEL PARALLEL[,PARALLEL...] WORKDIR OUT [STEPS]

With several strategies, each runs in turn in this one process (one backend start, one data load) into
WORKDIR-<strategy> and OUT-<strategy>.npz, and prints one JSON line each.
"""

import json
import sys

import jax
import numpy as np
from conftest import arrays, small_config  # tests/ is this script's directory, so on sys.path

from genjax import classifier, train


def config(model: str, parallel: str, steps: int):
  """SGD, not Adam: Adam's first updates are nearly sign(gradient), blind to a gradient that is off by a factor."""
  if model == "classifier_bn":  # BatchNorm, and no randomness (no shifts, no dropout): devices must agree exactly
    c = classifier.get_config("mnist")
    c.model.batch_norm, c.model.dropout, c.step.shift = True, 0.0, 0
    small = small_config("ae_dense")
    c.data.train_limit, c.train = small.data.train_limit, small.train
  else:
    c = small_config(model)
  c.train.steps = steps
  c.optim.name, c.optim.b1, c.optim.lr, c.optim.schedule = "sgd", 0.0, 0.05, "constant"
  c.parallel = parallel
  return c


def main(model, parallels, workdir, out, steps=4):
  many = "," in parallels
  for parallel in parallels.split(","):
    c = config(model, parallel, int(steps))
    w, o = (f"{workdir}-{parallel}", f"{out[:-len('.npz')]}-{parallel}.npz") if many else (workdir, out)
    r = train.train(c, w, quiet=True, family=classifier.FAMILY if model.startswith("classifier") else None)
    if jax.process_index() == 0:
      leaves = jax.tree_util.tree_leaves_with_path(arrays(r.state))
      np.savez(o, **{jax.tree_util.keystr(p): np.asarray(a) for p, a in leaves})
    print(json.dumps({"parallel": parallel, "compiles": r.compiles, "devices": jax.device_count(),
                      "processes": jax.process_count(), "steps": r.steps, "start": r.start_step}), flush=True)


if __name__ == "__main__":
  main(*sys.argv[1:])
