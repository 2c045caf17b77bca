"""Evaluation entry points: a run's checkpoint, a population's members, or a file of samples.

`evaluate_run(workdir)` restores the latest checkpoint (genjax.eval.restore), scores every block that applies to the
family, in the order of BLOCKS, and writes `workdir/eval.json` and pictures under `workdir/eval/`.
`evaluate_samples(path, dataset)` scores a `uint8 [N, H, W, C]` array of images from anywhere as the generator block
scores samples.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

import jax
import numpy as np

from genjax import data, inception, pictures
from genjax.errors import UserError
from genjax.eval import conditional, generator, likelihood, provenance, reconstruction, restore
from genjax.eval.block import NLL_EXAMPLES, NLL_K, NUM_SAMPLES, Settings
from genjax.models import gans

BLOCKS = (generator, conditional, likelihood, reconstruction)  # their metrics appear in eval.json in this order


def result_name(raw_generator: bool = False, best: bool = False, truncation: float | None = None) -> str:
  """eval, eval-best, eval-raw or eval-best-raw, with -truncation<t> where a truncation replaced the run's: the stem
  of an evaluation's JSON file and pictures folder."""
  return ("eval" + ("-best" if best else "") + ("-raw" if raw_generator else "")
          + (f"-truncation{truncation:g}" if truncation is not None else ""))


def evaluate_run(workdir, *, num_samples: int = NUM_SAMPLES, seed: int = 0, nll_k: int = NLL_K,
                 nll_examples: int = NLL_EXAMPLES, num_reference: int = NUM_SAMPLES,
                 inception_weights: str | None = None, raw_generator: bool = False, best: bool = False,
                 truncation: float | None = None, write: bool = True) -> dict:
  """Every metric that applies to the run in `workdir`, with its protocol; writes eval.json and eval/*.png.

  Generators are scored on `num_samples` samples against `num_reference` test images; VAE likelihoods on the first
  `nll_examples` test images with `nll_k` importance samples each. `inception_weights` adds Inception FID and KID.
  A GAN that keeps a moving average of its generator is scored on the average's samples, or with `raw_generator`
  on the trained generator's own, written apart: eval-raw.json and eval-raw/. `best` scores the best checkpoint by
  train.eval_every's score rather than the newest: eval-best.json and eval-best/. `truncation` replaces a GAN's
  `model.truncation` (0: untruncated latents; written apart, eval-truncation0.json). A population's directory
  (population.json) has each member scored, and mean and std over members."""
  kwargs = dict(num_samples=num_samples, seed=seed, nll_k=nll_k, nll_examples=nll_examples,
                num_reference=num_reference, inception_weights=inception_weights, raw_generator=raw_generator,
                truncation=truncation)
  if (pathlib.Path(workdir) / "population.json").exists():
    if best:
      raise UserError("--best: a population keeps no best checkpoint (train.eval_every is for single runs)")
    return evaluate_population(workdir, **kwargs, write=write)
  settings = Settings(**kwargs)
  settings.check()
  if inception_weights:
    inception.load(str(inception_weights))  # a bad weights file fails here, before any sampling
  t0 = time.perf_counter()
  run = restore.load_run(workdir, best=best)
  if raw_generator:
    raw = run.family.raw_generator(run.state) if run.family.raw_generator else None
    if raw is None:
      raise UserError(f"--raw_generator applies to GANs that keep a generator average (step.ema_decay > 0); "
                      f"{run.config.model.name} in {run.workdir} has no generator average")
    run = dataclasses.replace(run, state=raw)
  if truncation is not None:
    spec = getattr(run.state, "spec", None)
    if not isinstance(spec, gans.Spec):
      raise UserError(f"--truncation applies to GANs; {run.config.model.name} in {run.workdir} draws no latents to "
                      "truncate")
    gans.check_truncation(truncation, spec.latent_dist, "--truncation")
    run = dataclasses.replace(run, state=run.state.replace(spec=dataclasses.replace(spec, truncation=truncation)))
  name = result_name(raw_generator, best, truncation)
  blocks = [block.NAME for block in BLOCKS if block.applies(run.family)]
  print(f"genjax: evaluating {run.config.model.name} at step {run.step} ({', '.join(blocks)}); stages longer than "
        "a few seconds show their progress and estimated time", file=sys.stderr)
  dataset = run.config.data.name
  result: dict = {"model": run.config.model.name, "dataset": dataset, "kind": run.family.kind, "step": run.step,
                  "settings": settings.recorded()}
  protocol: dict = {"dataset": dataset, "split": "test", "seed": seed,
                    "matmul_precision": run.config.get("matmul_precision", "default"), "checkpoint": str(run.workdir /
                    "checkpoints" / str(run.step))}
  samples = None
  for block in BLOCKS:
    if block.applies(run.family):
      scored = block.score(run, settings)
      result.update(scored.metrics)
      protocol.update(scored.protocol)
      samples = scored.samples if scored.samples is not None else samples
  protocol.update(provenance.environment())
  result["training"] = training_time(run.workdir)
  result["protocol"] = protocol
  if write:
    out = run.workdir / name
    result["pictures"] = [f"{name}/{p}" for p in _pictures(run, out, samples)]
    if samples is not None:
      np.savez_compressed(out / "samples.npz", images=samples)
  result["eval_s"] = round(time.perf_counter() - t0, 1)
  if write:
    provenance.write_json(run.workdir / f"{name}.json", result)
  return result


def evaluate_population(workdir, **settings) -> dict:
  """Scores every member of a population run (each writes its own eval.json) and summarizes each numeric metric
  as mean, std (over members, ddof=0) and the members' values, in workdir/eval.json."""
  workdir = pathlib.Path(workdir)
  try:
    info = json.loads((workdir / "population.json").read_text())
    members = [workdir / m for m in info["members"]]
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{workdir / 'population.json'} is unreadable ({e}); it was left untouched") from e
  results = [evaluate_run(m, **settings) for m in members]
  first = results[0]
  summary = {}
  for name, value in first.items():
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in ("step", "eval_s"):
      values = [float(r[name]) for r in results]
      summary[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
  out = {"model": first["model"], "dataset": first["dataset"], "kind": first["kind"], "step": first["step"],
         "population": len(results), "sweep": info.get("sweep", {}), "members": info["members"],
         "settings": first["settings"], **summary, "eval_s": round(sum(r["eval_s"] for r in results), 1)}
  if settings.get("write", True):
    name = result_name(settings.get("raw_generator", False), truncation=settings.get("truncation"))
    provenance.write_json(workdir / f"{name}.json", out)
  return out


def load_samples(path) -> np.ndarray:
  """The `images` array of an .npz file, checked to be uint8 [N, H, W, C]."""
  path = pathlib.Path(path)
  try:
    with np.load(path, allow_pickle=False) as f:
      if "images" not in f:
        raise UserError(f"{path} has no array 'images' (it has {sorted(f.files)}); save uint8 [N, H, W, C] under "
                        f"that key")
      images = f["images"]
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path} as .npz: {str(e).splitlines()[0][:200]}") from e
  if images.dtype != np.uint8 or images.ndim != 4:
    raise UserError(f"{path}: 'images' must be uint8 [N, H, W, C], got {images.dtype} {list(images.shape)}")
  if len(images) < 2:
    raise UserError(f"{path}: need at least 2 images to compare distributions, got {len(images)}")
  return images


def evaluate_samples(path, dataset: str, out=None, *, seed: int = 0, num_reference: int = NUM_SAMPLES,
                     inception_weights: str | None = None) -> dict:
  """The generator metrics of the images in `path` against `dataset`'s test split; writes `out` (JSON)."""
  t0 = time.perf_counter()
  images = load_samples(path)
  if inception_weights:
    inception.load(str(inception_weights))
  reference = data.load(dataset, "test").images.shape[1:]
  if images.shape[1:] != reference:
    raise UserError(f"{path}: images are {list(images.shape[1:])} but {dataset} images are {list(reference)}")
  block, card = generator.generator_metrics(dataset, images, seed, num_reference, inception_weights)
  result = {"samples": str(path), "dataset": dataset, "kind": "generator", **block,
            "protocol": {"dataset": dataset, "split": "test", "seed": seed, **card, **provenance.environment()},
            "eval_s": round(time.perf_counter() - t0, 1)}
  out = pathlib.Path(out) if out else pathlib.Path(str(path).removesuffix(".npz") + ".eval.json")
  provenance.write_json(out, result)
  return result


def training_time(workdir: pathlib.Path) -> dict | None:
  path = workdir / "timing.json"
  return json.loads(path.read_text()) if path.exists() else None


def _pictures(run: restore.Run, out: pathlib.Path, samples_u8) -> list[str]:
  saved = []
  if samples_u8 is not None:
    pictures.save_grid(out / "samples.png", samples_u8[:100].astype(np.float32) / 255.0, ncol=10)
    pictures.save_neighbours(out / "nearest_training.png", samples_u8, data.load(run.config.data.name, "train").images)
    saved += ["samples.png", "nearest_training.png"]
  if run.family.reconstruct is not None:
    x = data.load(run.config.data.name, "test").images[:32].astype(np.float32) / 255.0
    pictures.save_reconstructions(out / "reconstructions.png", x, jax.jit(run.family.reconstruct)(run.state, x))
    saved.append("reconstructions.png")
  return saved
