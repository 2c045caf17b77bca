"""What `make` installs: the JAX build for the accelerator it finds (ACCEL), and what a run says of its device."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _accel(tmp_path, cuda_version=None, **env):
  """`make accel` with PATH holding only a fake nvidia-smi (reporting `cuda_version`) and the system's tools."""
  fake = tmp_path / "bin"
  fake.mkdir(parents=True)
  if cuda_version:
    (fake / "nvidia-smi").write_text(
        '#!/bin/sh\nif [ "$1" = "-L" ]; then echo "GPU 0: NVIDIA H100 80GB HBM3"; exit 0; fi\n'
        f'echo "| NVIDIA-SMI 580.65   Driver Version: 580.65   CUDA Version: {cuda_version}     |"\n')
    (fake / "nvidia-smi").chmod(0o755)
  clean = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "ACCEL"}
  return subprocess.run(["make", "-s", "accel", *[f"{k}={v}" for k, v in env.items()]], cwd=ROOT,
                        env={**clean, "PATH": f"{fake}:/usr/bin:/bin"}, capture_output=True, text=True)


@pytest.mark.skipif(any(pathlib.Path("/dev").glob("accel[0-9]*")) or pathlib.Path("/dev/nvidia0").exists(),
                    reason="this machine has an accelerator")
def test_make_picks_the_jax_build_for_the_accelerator_it_finds(tmp_path):
  assert _accel(tmp_path / "none").stdout.split() == ["cpu", "dev"]
  assert _accel(tmp_path / "c13", "13.0").stdout.split() == ["cuda13", "dev,cuda13"]
  assert _accel(tmp_path / "c12", "12.8").stdout.split() == ["cuda12", "dev,cuda12"]
  assert _accel(tmp_path / "forced", "13.0", ACCEL="cpu").stdout.split() == ["cpu", "dev"]


def test_an_unknown_accel_is_one_line(tmp_path):
  r = _accel(tmp_path, ACCEL="gpu")
  assert r.returncode != 0 and "ACCEL must be cpu, cuda12, cuda13 or tpu, got 'gpu'" in r.stderr


def test_an_accelerator_jax_does_not_see_is_named(tmp_path, monkeypatch):
  from genjax.eval import provenance
  fake = tmp_path / "bin"
  fake.mkdir()
  (fake / "nvidia-smi").write_text('#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3"\necho "GPU 1: NVIDIA H100"\n')
  (fake / "nvidia-smi").chmod(0o755)
  monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
  assert provenance.unused_accelerator().startswith("this machine has 2 NVIDIA GPU(s) but JAX sees only the CPU")
  monkeypatch.setenv("PATH", "/usr/bin:/bin")
  if not pathlib.Path("/dev/nvidia0").exists() and not any(pathlib.Path("/dev").glob("accel[0-9]*")):
    assert provenance.unused_accelerator() is None
