"""The benchmark suite: what a record holds, that its FLOP count is right, and (with the bench extra) that the
PyTorch reference models have exactly genjax's parameter counts."""

import functools
import json
import math
import pathlib
import sys
import types

import jax
import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import suite  # noqa: E402

from genjax import config as cfg  # noqa: E402
from genjax import train, xla  # noqa: E402
from genjax.models import MODELS  # noqa: E402


def test_a_quick_run_writes_records_with_every_field(tmp_path, capsys):
  assert suite.main(["--models", "ae_linear", "--batches", "32", "--torch", "none", "--seconds", "0.05",
                     "--out_dir", str(tmp_path)]) == 0
  [path] = tmp_path.glob("*.json")
  result = json.loads(path.read_text())
  assert path.name.startswith(suite.slug(jax.devices()[0].device_kind))  # on CPU followed by the CPU's model
  assert result["device_kind"] == jax.devices()[0].device_kind and result["peak_gflops"] > 0
  assert result["cpu"] and result["versions"]["jax"] == jax.__version__
  assert result["malloc"] == xla.host_malloc() and result["complete"] is True
  assert {(r["mode"], r["batch"]) for r in result["records"]} == {("step", 32), ("scan16", 32), ("train", 32)}
  k = {r["mode"]: r["steps_per_dispatch"] for r in result["records"]}
  # `train` times make train's own K on this backend (on CPU, 16 for ae_linear's intervals: 400, 1000, ...)
  assert k == {"step": 1, "scan16": 16, "train": train.steps_per_dispatch(cfg.model_config("ae_linear"))}
  for r in result["records"]:
    for key in ("model", "framework", "mode", "batch", "dtype", "devices", "images_per_sec", "compile_s",
                "flops_per_image", "pct_of_peak", "peak_gflops", "device_kind", "matmul_precision"):
      assert key in r, key
    assert r["images_per_sec"] > 0 and 0 < r["pct_of_peak"] < 100
    # the experiment's XLA:CPU kernel choice (genjax/configs/ae_linear.py: no YNNPACK) is what was timed
    assert r["xla_cpu_ynn"] == ("none" if jax.default_backend() == "cpu" else None)
    # pct_of_peak is what images/s and FLOPs/image say it is
    assert math.isclose(r["pct_of_peak"], 100 * r["images_per_sec"] * r["flops_per_image"] / (r["peak_gflops"] * 1e9))
    # the program's own peak memory: at least its state (the linear AE's two [784, 16] matrices, Adam's two moments
    # of each, float32) and its resident images, and not the process's maximum after the 2048^2 peak test
    state = 3 * 2 * 784 * 16 * 4
    assert state + suite.POOL * 784 <= r["peak_memory_bytes"] < 2048 * 2048 * 4, r["peak_memory_bytes"]
    if jax.default_backend() == "cpu":  # make train's K for ae_linear's intervals (400, 1000, ...)
      assert r["train_steps_per_dispatch"] == 16
    assert r["flops_source"] == "compiled"  # XLA:CPU's compiled program counts its dots
  # the linear AE's matmuls, each 2 x 784 x 16 flops per image: two forward, two weight gradients and the gradient
  # of the code (the pixels need none); plus the loss and Adam's elementwise work, shared by the batch
  matmuls = 5 * 2 * 784 * 16
  assert matmuls <= result["records"][0]["flops_per_image"] <= 1.3 * matmuls
  assert "| ae_linear | 32 |" in (tmp_path / (path.stem + ".md")).read_text()


def test_bfloat16_strategies_and_populations_are_recorded(tmp_path):
  assert suite.main(["--models", "ae_linear", "--batches", "32", "--modes", "step", "--torch", "none",
                     "--seconds", "0.05", "--dtypes", "float32,bfloat16", "--scale_models", "ae_linear",
                     "--populations", "1,3", "--out_dir", str(tmp_path)]) == 0
  [path] = tmp_path.glob("*.json")
  result = json.loads(path.read_text())
  assert {r["dtype"] for r in result["records"]} == {"float32", "bfloat16"}
  assert result["peak_bfloat16_gflops"] > 0
  [bf16] = [r for r in result["records"] if r["dtype"] == "bfloat16"]
  assert bf16["peak_gflops"] == result["peak_bfloat16_gflops"] and "vs_pytorch_eager" not in bf16
  scale = result["scaleout"]
  strategies = {r["strategy"]: r for r in scale if r["section"] == "strategy"}
  assert list(strategies) == ["none", "jit", "shard_map", "pmap"]
  for r in strategies.values():
    assert r["devices"] == jax.device_count() and r["images_per_sec"] > 0
    assert math.isclose(r["vs_none"], r["images_per_sec"] / strategies["none"]["images_per_sec"])
  pops = {r["population"]: r for r in scale if r["section"] == "population"}
  assert sorted(pops) == [1, 3]
  assert math.isclose(pops[3]["models_images_per_sec"], 3 * pops[3]["images_per_sec"])
  assert math.isclose(pops[3]["cost_vs_p1"], pops[1]["images_per_sec"] / pops[3]["images_per_sec"])
  md = (tmp_path / (path.stem + ".md")).read_text()
  assert "## bfloat16 compute" in md and "| ae_linear | 32 | train | pmap |" in md
  assert "| ae_linear | 32 | train | 3 |" in md


def test_a_stopped_run_keeps_the_models_and_batches_it_finished(tmp_path, monkeypatch):
  """The results are written after each model and batch: a run stopped in its second batch leaves whole files with
  the first batch's records, marked incomplete."""
  real = suite.JaxModel.measure

  def measure(self, *a, **k):
    if self.batch == 48:
      raise RuntimeError("stopped")
    return real(self, *a, **k)

  monkeypatch.setattr(suite.JaxModel, "measure", measure)
  with pytest.raises(RuntimeError, match="stopped"):
    suite.main(["--models", "ae_linear", "--batches", "32,48", "--modes", "step", "--torch", "none", "--seconds",
                "0.05", "--dtypes", "float32", "--strategies", "none", "--scale_models", "",
                "--out_dir", str(tmp_path)])
  [path] = tmp_path.glob("*.json")
  assert not list(tmp_path.glob("*.tmp"))
  result = json.loads(path.read_text())
  assert result["complete"] is False
  assert [(r["model"], r["batch"]) for r in result["records"]] == [("ae_linear", 32)]
  assert "**Partial:**" in (tmp_path / (path.stem + ".md")).read_text()


def test_unknown_model_is_one_line_and_exit_2(tmp_path, capsys):
  assert suite.main(["--models", "nope", "--out_dir", str(tmp_path)]) == 2
  assert "unknown model 'nope'" in capsys.readouterr().err
  assert not list(tmp_path.iterdir())
  # A bad strategy is caught before the run; an empty list skips the section.
  assert suite.main(["--models", "ae_linear", "--strategies", "jit,nope", "--out_dir", str(tmp_path)]) == 2
  assert "unknown strategy 'nope'" in capsys.readouterr().err
  assert not list(tmp_path.iterdir())
  assert suite.main(["--models", "ae_linear", "--rounds", "0", "--out_dir", str(tmp_path)]) == 2
  assert "--rounds must be at least 1" in capsys.readouterr().err
  assert not list(tmp_path.iterdir())


def test_rounds_alternate_frameworks_and_report_medians(tmp_path, monkeypatch):
  """--rounds 3: genjax and PyTorch measured in turn, three times each; each record is its rounds' median. A stand-in
  PyTorch reference (so the test needs no torch) returns 1000, 4000 and 2000 images/s in its three rounds."""
  calls = []
  fake = types.ModuleType("torch_ref")
  fake.MODELS = {"ae_linear": None}
  speeds = iter([1000.0, 4000.0, 2000.0])

  def measure(name, batch, mode, min_seconds):
    calls.append("pytorch")
    return {"images_per_sec": next(speeds), "compile_s": 0.0, "repeats": 1}

  fake.measure = measure
  monkeypatch.setitem(sys.modules, "torch_ref", fake)
  real = suite.JaxModel.measure

  def spy(self, *a, **k):
    calls.append("genjax")
    return real(self, *a, **k)

  monkeypatch.setattr(suite.JaxModel, "measure", spy)
  compiles = []
  plan_compile = suite.parallel.Plan.compile
  monkeypatch.setattr(suite.parallel.Plan, "compile", lambda *a, **k: compiles.append(1) or plan_compile(*a, **k))
  assert suite.main(["--models", "ae_linear", "--batches", "32", "--modes", "step", "--torch", "eager",
                     "--seconds", "0.05", "--dtypes", "float32", "--strategies", "none", "--scale_models", "",
                     "--rounds", "3",
                     "--out_dir", str(tmp_path)]) == 0
  assert calls == ["genjax", "pytorch"] * 3
  assert len(compiles) == 1  # later rounds reuse the first round's program
  [path] = tmp_path.glob("*.json")
  result = json.loads(path.read_text())
  assert result["rounds"] == 3
  ours, theirs = result["records"]
  assert theirs["framework"] == "pytorch" and theirs["images_per_sec"] == 2000.0 and theirs["torch_device"] == "cpu"
  assert theirs["round_images_per_sec"] == [1000.0, 4000.0, 2000.0]  # median 2000, mean 2333
  assert ours["images_per_sec"] == sorted(ours["round_images_per_sec"])[1]
  assert ours["vs_pytorch_eager"] == ours["images_per_sec"] / 2000.0
  assert "each round" in (tmp_path / (path.stem + ".md")).read_text()


def _genjax_param_count(name):
  c = cfg.model_config(name)
  state = MODELS[name].init_state(jax.random.PRNGKey(0), c, {"image": np.zeros((2, 28, 28, 1), np.float32)})
  players = [getattr(state, p) for p in ("gen", "disc") if hasattr(state, p)]
  trees = [p.params for p in players] if players else [state.params]
  return sum(int(np.prod(a.shape)) for t in trees for a in jax.tree.leaves(t))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pytorch_reference_has_genjax_parameter_counts(name):
  pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra (make bench installs it)")
  import torch_ref
  # A reference is optional (the suite reports genjax alone without one), so a new model needs no PyTorch twin.
  assert set(torch_ref.MODELS) <= set(MODELS)
  if name not in torch_ref.MODELS:
    pytest.skip(f"no PyTorch reference of {name}")
  model = torch_ref.MODELS[name](name)
  torch_count = sum(p.numel() for m in model.modules for p in m.parameters())
  assert torch_count == _genjax_param_count(name)


@pytest.mark.parametrize("name", ["gan", "wgan", "wgan_gp"])
def test_pytorch_gan_references_use_genjaxs_optimizer(name):
  """The same optimizer, rate and moments as genjax's default config: RMSProp without momentum for wgan, Adam for
  the others (a reference on another optimizer would time another step)."""
  torch = pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra (make bench installs it)")
  import torch_ref
  o = cfg.model_config(name).optim
  ref = torch_ref.MODELS[name](name)
  for opt in (ref.opt_g, ref.opt_d):
    if o.name == "rmsprop":
      assert isinstance(opt, torch.optim.RMSprop)
      assert (opt.defaults["lr"], opt.defaults["alpha"], opt.defaults["momentum"]) == (o.lr, o.b2, o.b1)
    else:
      assert isinstance(opt, torch.optim.Adam) and (opt.defaults["lr"], opt.defaults["betas"]) == (o.lr, (o.b1, o.b2))


def test_torch_compile_is_fresh_for_each_measurement(monkeypatch):
  """Dynamo's caches are shared by every compiled module. Without a reset per measurement a long run filled them
  and measured the later models' 'torch.compile' steps eagerly; now each measurement compiles afresh, and a filled
  cache raises instead of falling back. With the limit lowered to 1, three measurements in a row must all run."""
  torch = pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra (make bench installs it)")
  import torch_ref
  monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
  monkeypatch.setattr(torch._dynamo.config, "fail_on_recompile_limit_hit", False)
  for batch in (8, 16, 24):
    assert torch_ref.measure("ae_linear", batch, "compile", 0.0)["images_per_sec"] > 0
  assert torch._dynamo.config.fail_on_recompile_limit_hit


def test_pytorch_runs_on_the_device_torch_sees():
  """PyTorch's parameters, random draws and resident data all live on torch_ref.device() (the GPU where torch sees
  CUDA), and the record says which."""
  torch = pytest.importorskip("torch", reason="the PyTorch reference needs the bench extra (make bench installs it)")
  import torch_ref
  assert torch_ref.device() == ("cuda" if torch.cuda.is_available() else "cpu")
  r = torch_ref.measure("vae_dense", 16, "eager", 0.05)
  assert r["torch_device"] == torch_ref.device() and r["images_per_sec"] > 0
  with torch.device(torch_ref.device()):
    model = torch_ref.MODELS["gan_mlp"]("gan_mlp")
  assert {p.device.type for m in model.modules for p in m.parameters()} == {torch_ref.device()}


class _Cost:
  def __init__(self, flops):
    self.flops = flops

  def cost_analysis(self):
    return None if self.flops is None else {"flops": self.flops}


@pytest.mark.parametrize("compiled, lowered, expected", [
    (100.0, 120.0, (100.0, "compiled")),  # fusion and simplification remove a little: the compiled count stands
    (0.0, 120.0, (120.0, "lowered")),  # a GPU's cuDNN and cuBLAS custom calls count as nothing
    (10.0, 120.0, (120.0, "lowered")),
    (None, 120.0, (120.0, "lowered")),
    (100.0, None, (100.0, "compiled")),
    (None, None, (None, None))])
def test_flops_come_from_the_lowered_program_when_the_compiled_one_hides_them(compiled, lowered, expected):
  assert suite.program_flops(_Cost(lowered), _Cost(compiled)) == expected


@pytest.mark.slow
def test_the_lowered_program_counts_a_models_flops_as_the_compiled_one_does():
  """On CPU both programs count the dense VAE's matmuls; the lowered one is the fallback for GPUs."""
  m = suite.JaxModel("vae_dense", 32)
  flops, source = m.step_flops()  # compiled, not timed
  assert source == "compiled" and list(m._programs) == [(1, "float32", "none", 1, m.ynn)]
  step = train.with_precision(functools.partial(m.family.train_step, **m.config.step), "default")
  idx = np.zeros((1, m.per_step), np.int32)
  lowered = jax.jit(train.make_chunk(step, 1)).lower(m.state, m.images, m.labels, idx, jax.random.PRNGKey(1))
  assert math.isclose(suite._cost_flops(lowered), flops, rel_tol=0.25)


def test_a_run_of_make_trains_mode_alone_still_counts_flops(tmp_path):
  assert suite.main(["--models", "ae_linear", "--batches", "16", "--modes", "train", "--torch", "none",
                     "--dtypes", "float32", "--seconds", "0.05", "--scale_models", "none",
                     "--out_dir", str(tmp_path)]) == 0
  [path] = tmp_path.glob("*.json")
  result = json.loads(path.read_text())
  [r] = result["records"]
  assert r["mode"] == "train" and r["flops_per_image"] > 5 * 2 * 784 * 16 and 0 < r["pct_of_peak"] < 100
  assert result["scaleout"] == []


def test_a_timed_window_runs_sixteen_steps_and_waits_once(monkeypatch):
  """Step mode queues 16 dispatches per wait, as the loop does, rather than timing a round trip per step; images/s
  divide the window's time by the steps it ran, whatever the mode."""
  waits = []
  real_wait = jax.block_until_ready
  monkeypatch.setattr(suite.jax, "block_until_ready", lambda x: waits.append(1) or real_wait(x))
  monkeypatch.setattr(suite, "timed", lambda fn, min_seconds: (fn(), (1.0, 1))[1])
  m = suite.JaxModel("ae_linear", 8)
  for mode, k in (("step", 1), ("scan16", 16), ("train", m.train_k)):
    waits.clear()
    r = m.measure(mode, 0.0)
    assert r["steps_per_dispatch"] == k
    assert waits == [1, 1]  # once after the warm-up dispatches, once after the window
    assert r["images_per_sec"] == 8 * k * -(-suite.WINDOW_STEPS // k)  # 1 s per window of that many dispatches
