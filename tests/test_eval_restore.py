"""genjax.eval.restore: the restore target is abstract and placed on this process's devices."""

import jax
from conftest import small_config

from genjax.eval import restore
from genjax.models import MODELS


def test_restore_target_is_abstract_and_placed_on_this_process_devices():
  c = small_config("gan")
  target = restore.restore_target(MODELS["gan"], c, (28, 28, 1))
  leaves = jax.tree.leaves(target)
  assert leaves and all(isinstance(a, jax.ShapeDtypeStruct) for a in leaves)
  assert all(a.sharding.device_set == set(jax.devices()) for a in leaves)
