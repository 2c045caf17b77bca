"""`xla_cpu_ynn`: which XLA:CPU library kernels compile the training programs (genjax/xla.py)."""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest
from conftest import small_config

from genjax import config as cfg
from genjax import models, parallel, train, xla
from genjax.errors import UserError
from genjax.train import make_chunk


def ynn_fusions(hlo: str) -> tuple[int, int]:
  """(YNNPACK fusions, those of them that hold a convolution) in a compiled module's text."""
  blocks = dict(re.findall(r"^%(\S+) [^\n]*\{\n(.*?)\n\}", hlo, re.S | re.M))
  called = re.findall(r"calls=%([\w.\-]+), [^\n]*__ynn_fusion", hlo)
  return len(called), sum("convolution(" in blocks.get(name, "") for name in called)


def compiled_chunk(name: str, ynn: str) -> str:
  c = cfg.model_config(name)
  family = models.get(name)
  x = {"image": jnp.zeros((16, 28, 28, 1)), "label": jnp.zeros((16,), jnp.int32)}
  state = family.init_state(jax.random.PRNGKey(0), c, x)
  fn = parallel.plan("none", 16).compile(make_chunk, functools.partial(family.train_step, **c.step), 1,
                                         compiler_options=xla.compiler_options(ynn))
  images = jnp.zeros((32, 28, 28, 1), jnp.uint8)
  idx = jnp.zeros((1, 16), jnp.int32)
  return fn.lower(state, images, jnp.zeros((32,), jnp.int32), idx, jax.random.PRNGKey(1)).compile().as_text()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
def test_dots_hands_convolutions_to_eigen_and_none_turns_ynnpack_off():
  everything, convs_all = ynn_fusions(compiled_chunk("ae", "all"))
  dots, convs_dots = ynn_fusions(compiled_chunk("ae", "dots"))
  off, _ = ynn_fusions(compiled_chunk("ae", "none"))
  assert convs_all > 0, "jaxlib's default no longer gives convolutions to YNNPACK: re-measure genjax/xla.py"
  assert convs_dots == 0 and dots > 0  # the decoder's dense layer stays a YNNPACK dot
  assert off == 0


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA:CPU option")
def test_pmap_compiles_with_the_options_too():
  # jax.pmap takes no compiler options; the plan compiles its program ahead of time with them, once.
  c = cfg.model_config("ae_dense")
  family = models.get("ae_dense")
  state = family.init_state(jax.random.PRNGKey(0), c, {"image": jnp.zeros((16, 28, 28, 1))})
  args = (jnp.zeros((32, 28, 28, 1), jnp.uint8), jnp.zeros((32,), jnp.int32), jnp.zeros((1, 16), jnp.int32),
          jax.random.PRNGKey(1))
  for ynn in ("dots", "none"):
    fn = parallel.plan("pmap", 16).compile(make_chunk, functools.partial(family.train_step, **c.step), 1,
                                           compiler_options=xla.compiler_options(ynn))
    s = fn(jax.tree.map(jnp.copy, state), *args)[0]
    fn(s, *args)
    [executable] = fn.executables.values()
    assert (ynn_fusions(executable.as_text())[0] > 0) == (ynn == "dots")


def test_compiler_options(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  if jax.default_backend() == "cpu":
    assert xla.compiler_options("dots") == {xla.OPTION: xla.CPU_YNN["dots"]}
    assert xla.compiler_options("none") == {xla.OPTION: ""}
  assert xla.compiler_options("all") is None
  with pytest.raises(ValueError, match="xla_cpu_ynn"):
    xla.compiler_options("some")
  # The user's own flag wins; other backends get nothing.
  monkeypatch.setenv("XLA_FLAGS", f"--{xla.OPTION}=")
  assert xla.compiler_options("dots") is None
  monkeypatch.delenv("XLA_FLAGS")
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert xla.compiler_options("dots") is None


def test_bad_value_is_one_line():
  c = small_config("ae_dense")
  c.xla_cpu_ynn = "fast"
  with pytest.raises(UserError, match="xla_cpu_ynn must be one of dots, none, all"):
    cfg.check(c)


def test_a_config_saved_before_the_key_compiles_with_the_default():
  c = small_config("ae_dense")
  assert xla.ynn_of(c) == "none"  # genjax/configs/ae_dense.py sets it
  with c.unlocked():
    del c["xla_cpu_ynn"]
  assert xla.ynn_of(c) == xla.DEFAULT_YNN == cfg.base().xla_cpu_ynn == "dots"
  cfg.check(c)


def test_train_compiles_with_the_configs_option(tmp_path, monkeypatch):
  seen = []
  compile_ = parallel.Plan.compile

  def spy(self, *args, compiler_options=None, **kwargs):
    seen.append(compiler_options)
    return compile_(self, *args, compiler_options=compiler_options, **kwargs)

  monkeypatch.setattr(parallel.Plan, "compile", spy)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  c = small_config("ae_dense", steps=2, log_every=1, sample_every=2, checkpoint_every=2)
  c.xla_cpu_ynn = "none"
  train.train(c, tmp_path / "run", quiet=True)
  assert seen == [xla.compiler_options("none")]
  assert jax.default_backend() != "cpu" or seen == [{xla.OPTION: ""}]


def test_host_malloc_reads_glibc_tunables(monkeypatch):
  for value, want in [("", "default"), ("glibc.malloc.hugetlb=1", "hugetlb"),
                      ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", "hugetlb"),
                      ("glibc.malloc.hugetlb=0", "default")]:
    monkeypatch.setenv("GLIBC_TUNABLES", value)
    assert xla.host_malloc() == want, value


def test_makefile_exports_the_malloc_tunable():
  """make's recipes (train, bench, test) run with the huge-page malloc that genjax/xla.py measured."""
  makefile = (pathlib.Path(__file__).parents[1] / "Makefile").read_text()
  assert f"export GLIBC_TUNABLES ?= {xla.MALLOC_TUNABLE}" in makefile
