"""The training loop: compiles once, resumes bit for bit, stops on NaN, refuses foreign workdirs, saves on SIGTERM."""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import arrays, small_config

from genjax import checkpoint, models, train
from genjax import config as cfg
from genjax.errors import UserError


@pytest.mark.parametrize("name,k", [("gan", 1), ("ae", 2)])
def test_step_compiles_once_over_many_chunks(tmp_path, name, k):
  c = small_config(name, steps_per_dispatch=k)
  result = train.train(c, tmp_path, quiet=True)
  assert result.steps_per_dispatch == k
  assert result.steps == 8 and (8 // k) > 2
  assert result.compiles == 1
  # a resumed run to a later step also compiles once
  c.train.steps = 12
  assert train.train(c, tmp_path, quiet=True).compiles == 1


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_resume_is_bitwise_identical(tmp_path, name):
  c = small_config(name)
  straight = train.train(c, tmp_path / "a", quiet=True).state
  c.train.steps = 4
  train.train(c, tmp_path / "b", quiet=True)
  c.train.steps = 8
  resumed = train.train(c, tmp_path / "b", quiet=True)
  assert resumed.start_step == 4
  chex.assert_trees_all_equal(arrays(resumed.state), arrays(straight))
  a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
  b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
  drop = lambda r: {k: v for k, v in r.items() if k != "images_per_sec"}
  assert [drop(r) for r in a] == [drop(r) for r in b]


def test_outputs(tmp_path):
  c = small_config("vae")
  train.train(c, tmp_path, quiet=True)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4", "8"]
  names = sorted(p.name for p in (tmp_path / "samples").iterdir())
  assert names == ["curves.png", "reconstructions_000004.png", "reconstructions_000008.png",
                   "samples_000004.png", "samples_000008.png"]
  records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [2, 4, 6, 8]
  assert json.loads((tmp_path / "config.json").read_text())["config"]["model"]["name"] == "vae"
  assert list(tmp_path.glob("events.out.tfevents.*"))


def _nan_family():
  """The vae family, with a train step whose loss turns NaN from step 5 on."""
  vae = models.MODELS["vae"]

  def train_step(state, batch, rng, *, beta=1.0, axis_name=None):
    new, metrics = vae.train_step(state, batch, rng, beta=beta)
    metrics["loss"] = jnp.where(state.step >= 5, jnp.nan, metrics["loss"])
    return new, metrics

  members = {k: getattr(vae, k) for k in dir(vae) if not k.startswith("__")}
  return types.SimpleNamespace(**{**members, "train_step": train_step, "__name__": "nan_vae"})


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  monkeypatch.setitem(models.MODELS, "vae", _nan_family())
  c = small_config("vae")
  with pytest.raises(train.Diverged, match=r"loss became nan at step 6; .* last good checkpoint: step 4"):
    train.train(c, tmp_path, quiet=True)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]


def test_workdir_of_another_model_is_refused_and_untouched(tmp_path):
  train.train(small_config("ae", steps=4), tmp_path, quiet=True)
  before = sorted(str(p) for p in tmp_path.rglob("*"))
  config_json = (tmp_path / "config.json").read_text()
  with pytest.raises(UserError, match="holds checkpoints trained with model"):
    train.train(small_config("vae", steps=4), tmp_path, quiet=True)
  c = small_config("ae", steps=8)
  c.model.code_dim = 8
  with pytest.raises(UserError, match="model.code_dim=16"):
    train.train(c, tmp_path, quiet=True)
  assert sorted(str(p) for p in tmp_path.rglob("*")) == before
  assert (tmp_path / "config.json").read_text() == config_json


def test_a_run_from_before_an_option_existed_resumes_with_it_off(tmp_path):
  """A workdir whose config.json predates a model option (the key absent) resumes when the option is off; on, it is
  another model and refused. A sampling-only key (model.truncation) may take any value on resume."""
  train.train(small_config("gan_mlp", steps=4), tmp_path, quiet=True)
  path = tmp_path / "config.json"
  saved = json.loads(path.read_text())
  del saved["config"]["model"]["truncation"], saved["config"]["model"]["minibatch_std"]
  path.write_text(json.dumps(saved))  # as genjax wrote it before the two options existed
  assert train.train(small_config("gan_mlp", steps=8), tmp_path, quiet=True).steps == 8
  path.write_text(json.dumps(saved))
  c = small_config("gan_mlp", steps=12)
  c.model.truncation = 1.5  # how samples are drawn: not what was trained
  assert train.train(c, tmp_path, quiet=True).steps == 12
  path.write_text(json.dumps(saved))
  c.model.minibatch_std = True  # another discriminator
  with pytest.raises(UserError, match="model.minibatch_std=None, but this run has model.minibatch_std=True"):
    train.train(c, tmp_path, quiet=True)


def test_batch_larger_than_dataset_is_refused(tmp_path):
  c = small_config("ae")
  c.train.batch_size = 1024
  with pytest.raises(UserError, match="larger than the 512 training examples"):
    train.train(c, tmp_path, quiet=True)
  assert not (tmp_path / "checkpoints").exists()


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  args = [sys.executable, "-m", "genjax.main", "train", "--model", "ae", "--workdir", str(tmp_path), "--quiet",
          "--config.data.train_limit=512", "--config.train.batch_size=32", "--config.train.steps=100000",
          "--config.train.log_every=1", "--config.train.checkpoint_every=100000",
          "--config.train.sample_every=100000"]
  proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
  deadline = time.time() + 120
  while not (tmp_path / "metrics.jsonl").exists() or not (tmp_path / "metrics.jsonl").read_text():
    assert time.time() < deadline and proc.poll() is None
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 128 + signal.SIGTERM
  assert "Traceback" not in err and "SIGTERM at step" in err
  step = int(err.split("SIGTERM at step ")[1].split(";")[0])
  assert checkpoint.Checkpoints(tmp_path / "checkpoints").latest_step() == step > 0



@pytest.mark.parametrize("precision,want", [("default", "None"), ("highest", "HIGHEST"), ("high", "HIGH")])
def test_matmul_precision_reaches_every_matmul_and_conv_of_the_step(precision, want, backend_precision):
  """train.matmul_precision, recorded in config.json and eval.json's protocol, sets the precision of the step's
  float32 contractions (on NVIDIA GPUs the default is TF32, on TPUs one bfloat16 pass)."""
  c = cfg.model_config("ae")
  family = models.get("ae")
  batch = {"image": jnp.zeros((2, 28, 28, 1)), "label": jnp.zeros((2,), jnp.int32)}
  state = family.init_state(jax.random.PRNGKey(0), c, batch)
  step = train.with_precision(functools.partial(family.train_step, **c.step), precision)
  jaxpr = str(jax.make_jaxpr(step)(state, batch, jax.random.PRNGKey(1)))
  found = set(re.findall(r"precision=(None|\(Precision\.\w+, Precision\.\w+\))", jaxpr))
  assert found == {want if want == "None" else f"(Precision.{want}, Precision.{want})"}, (precision, found)


def test_an_unknown_matmul_precision_is_one_line():
  c = small_config("ae_dense")
  c.matmul_precision = "tf32"
  with pytest.raises(UserError, match="matmul_precision must be one of default, high, highest, got 'tf32'"):
    cfg.check(c)


def test_accelerators_dispatch_many_steps_whatever_the_log_interval():
  c = cfg.model_config("gan")  # 3000 steps, logs every 50, samples every 500, checkpoints every 1000
  assert train.steps_per_dispatch(c, backend="cpu") == 2  # divides the log interval too, as measured best on CPU
  assert train.steps_per_dispatch(c, backend="gpu") == 50  # the largest divisor of 500, 1000, 3000 up to 64
  assert train.steps_per_dispatch(c, 1500, backend="tpu") == 50
  c.train.sample_every, c.train.checkpoint_every, c.train.steps = 512, 1024, 4096
  assert train.steps_per_dispatch(c, backend="gpu") == train.ACCELERATOR_STEPS_PER_DISPATCH == 64
  c.train.steps_per_dispatch = 16
  assert train.steps_per_dispatch(c, backend="gpu") == 16


def test_a_chunk_logs_each_log_step_inside_it(tmp_path):
  from genjax.rundir import Log
  log = Log(tmp_path, 0, 20, batch_size=4, quiet=True, log_every=3)
  log.add(8, {"loss": jnp.arange(1.0, 9.0)})  # steps 1..8: records at 3 and 6, steps 7, 8 wait
  log.add(10, {"loss": jnp.array([9.0, 10.0])})  # record at 9 from steps 7..9
  log.close()
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["loss"]) for r in records] == [(3, 2.0), (6, 5.0), (9, 8.0)]


def test_chunks_that_cross_log_steps_log_what_one_step_per_dispatch_logs(tmp_path, monkeypatch):
  """As on an accelerator: 4 steps per dispatch with a record every 6 steps, against one step per dispatch."""
  c = small_config("ae_dense", steps=24, log_every=6, sample_every=12, checkpoint_every=12)
  curves = {}
  for k in (1, 4):
    monkeypatch.setattr(train, "steps_per_dispatch", lambda config, start=0, backend=None, k=k: k)
    train.train(c, tmp_path / str(k), quiet=True)
    curves[k] = [json.loads(line) for line in (tmp_path / str(k) / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in curves[4]] == [r["step"] for r in curves[1]] == [6, 12, 18, 24]
  for a, b in zip(curves[1], curves[4]):
    assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(a["loss"]), (a, b)


def test_images_resident_as_rows_give_the_same_batches_bit_for_bit():
  """On TPUs the loop keeps the dataset as [N, H·W·C] rows (TPU memory tiles the last two axes) and reshapes each
  gathered batch: the same batches as from [N, H, W, C]."""
  images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
  labels = np.arange(64, dtype=np.int32)
  idx = np.random.default_rng(1).permutation(64).astype(np.int32).reshape(2, 32)
  batches = lambda state, batch, rng: (state, batch)  # the step's metrics: the batch it was given
  _, a = jax.jit(train.make_chunk(batches, 2))(0, images, labels, idx, jax.random.PRNGKey(1))
  _, b = jax.jit(train.make_chunk(batches, 2, image_shape=(28, 28, 1)))(0, images.reshape(64, -1), labels, idx,
                                                                        jax.random.PRNGKey(1))
  assert a["image"].shape == b["image"].shape == (2, 32, 28, 28, 1)
  chex.assert_trees_all_equal(a, b)
  np.testing.assert_allclose(a["image"][1, 3], images[idx[1, 3]] / 255.0, rtol=1e-6)


def test_the_tests_pin_full_float32_precision():
  """conftest.py pins float32 matmuls and convs for the tests (TF32 on a GPU would break their 1e-5 and bitwise
  comparisons): a step traced here, at `matmul_precision: default`, asks for HIGHEST."""
  assert os.environ["JAX_DEFAULT_MATMUL_PRECISION"] == "highest"
  jaxpr = str(jax.make_jaxpr(lambda a: a @ a)(jnp.ones((4, 4))))
  assert "Precision.HIGHEST" in jaxpr, jaxpr
