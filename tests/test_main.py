"""The command line: an end-to-end run on real MNIST, and one clear line for each user error."""

import os
import subprocess
import sys

import pytest

from genjax import main
from genjax.models import MODELS


def _cli(*args, timeout=300):
  return subprocess.run([sys.executable, "-m", "genjax.main", *args], capture_output=True, text=True,
                        timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_end_to_end_gan_on_a_slice_of_mnist(tmp_path):
  args = ["train", "--model", "gan", "--workdir", str(tmp_path), "--config.data.train_limit=1024",
          "--config.train.batch_size=64", "--config.train.steps=20", "--config.train.log_every=5",
          "--config.train.sample_every=10", "--config.train.checkpoint_every=10"]
  proc = _cli(*args)
  assert proc.returncode == 0, proc.stderr
  assert "trained gan on mnist to step 20" in proc.stdout and "images/s" in proc.stdout
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "20"]
  assert (tmp_path / "samples" / "samples_000020.png").stat().st_size > 1000
  # a second run with the same workdir resumes, and a longer one continues
  proc = _cli(*args[:-4], "--config.train.steps=30", "--config.train.log_every=5",
              "--config.train.sample_every=10", "--config.train.checkpoint_every=10")
  assert proc.returncode == 0, proc.stderr
  assert "to step 30 (10 steps this run)" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--model", "nope"], f"unknown model 'nope'; available: {', '.join(sorted(MODELS))}"),
    (["--model", "gan", "--config.train.stepz=1"], "unknown config key 'train.stepz' (did you mean 'train.steps'?)"),
    (["--model", "gan", "--config.train.steps=lots"], "config key 'train.steps' expects int, got 'lots'"),
    (["--model", "gan", "--config.optim.lr=-0.1"], "optim.lr must be positive, got -0.1"),
    (["--model", "gan", "--config.step.loss=wasserstein"], "step.loss must be one of"),
    (["--model", "vae", "--dataset", "no_such_dataset"], "unknown dataset 'no_such_dataset'"),
    (["--model", "ae", "--config.train.batch_size=100000"], "larger than the 60000 training examples"),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, message):
  assert main.main(["train", "--workdir", str(tmp_path / "w"), *args]) == 2
  err = capsys.readouterr().err.strip()
  assert err.startswith("genjax: error: ") and message in err and "\n" not in err
  assert not (tmp_path / "w" / "checkpoints").exists()


def test_user_error_in_a_real_process_has_no_traceback():
  proc = _cli("train", "--model", "nope")
  assert proc.returncode == 2
  assert proc.stderr.strip() == f"genjax: error: unknown model 'nope'; available: {', '.join(sorted(MODELS))}"


def test_a_multi_process_run_joins_the_runtime_before_the_first_line(tmp_path):
  """The first line names the devices, which starts JAX's backend: the CLI joins the multi-process runtime before
  it (jax.distributed.initialize refuses to run after). One process over gloo, through $GENJAX_COORDINATOR."""
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GENJAX_COORDINATOR": f"127.0.0.1:{port}",
         "GENJAX_NUM_PROCESSES": "1", "GENJAX_PROCESS_ID": "0"}
  proc = subprocess.run([sys.executable, "-m", "genjax.main", "train", "--model", "ae_dense", "--workdir",
                         str(tmp_path), "--quiet", "--config.data.train_limit=512", "--config.train.steps=8",
                         "--config.train.log_every=8", "--config.train.sample_every=8",
                         "--config.train.checkpoint_every=8"], capture_output=True, text=True, timeout=240, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.startswith("genjax: training ae_dense on mnist, on 1 x ")
