"""genjax.eval.provenance: the environment a result records, and whole-file JSON writes."""

import json

import jax.numpy as jnp
import numpy as np

from genjax.eval import provenance


def test_environment_names_versions_device_and_cpu():
  env = provenance.environment()
  assert {"jax", "flax", "optax", "numpy"} <= set(env["versions"]) and " x " in env["device"]
  assert env["cpu"] == provenance.cpu_name() and env["cpu"].endswith(" cores")


def test_write_json_turns_arrays_into_numbers_and_leaves_no_temporary_file(tmp_path):
  path = tmp_path / "new" / "result.json"
  provenance.write_json(path, {"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3), "d": jnp.float32(2.0),
                               "e": (1, np.bool_(True))})
  assert path.read_text().endswith("}\n")
  assert json.loads(path.read_text()) == {"a": 0.5, "b": 3, "c": [0, 1, 2], "d": 2.0, "e": [1, True]}
  assert [p.name for p in path.parent.iterdir()] == ["result.json"]
