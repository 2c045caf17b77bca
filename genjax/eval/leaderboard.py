"""The leaderboard: every run under a root, scored with the same settings (a fresh eval.json is reused), tabled in
markdown by kind of metrics, with the protocol the runs share."""

from __future__ import annotations

import json
import pathlib

from genjax import checkpoint, models
from genjax.eval import provenance
from genjax.eval import run as evaluation
from genjax.eval.block import NLL_EXAMPLES, NLL_K, NUM_SAMPLES, Settings

COLUMNS = {  # kind -> (key, header, format)
    "generator": [("fid", "FID ↓", ".2f"), ("kid", "KID ↓", ".4f"), ("inception_fid", "Inception FID ↓", ".2f"),
                  ("precision", "precision", ".3f"),
                  ("recall", "recall", ".3f"), ("density", "density", ".3f"), ("coverage", "coverage", ".3f"),
                  ("classifier_score", "classifier score", ".2f"), ("classes_covered", "classes", "d"),
                  ("class_kl", "class KL ↓", ".3f"), ("label_accuracy", "label accuracy", ".3f")],
    "vae": [("neg_elbo", "−ELBO (nats) ↓", ".2f"), ("nll", "NLL (nats) ↓", ".2f")],
    "autoencoder": [("mse", "MSE per pixel ↓", ".4f"), ("bce", "BCE (nats) ↓", ".1f"), ("psnr", "PSNR (dB)", ".2f"),
                    ("denoise_psnr", "denoised PSNR (dB)", ".2f")],
}


def find_runs(root) -> list[pathlib.Path]:
  """Every directory under `root` holding a config.json of a registered model and at least one checkpoint."""
  found = []
  for path in sorted(pathlib.Path(root).rglob("config.json")):
    workdir = path.parent
    try:
      model = json.loads(path.read_text())["config"]["model"]["name"]
    except (ValueError, KeyError, TypeError):
      continue
    if model in models.MODELS and any((workdir / "checkpoints").glob("[0-9]*")):
      found.append(workdir)
  return found


def _current(workdir: pathlib.Path, settings: dict) -> dict | None:
  """The run's eval.json when it scored the latest checkpoint with the same settings, else None."""
  path = workdir / "eval.json"
  if not path.exists():
    return None
  try:
    old = json.loads(path.read_text())
  except ValueError:
    return None
  ckpts = checkpoint.Checkpoints(workdir / "checkpoints")
  latest = ckpts.latest_step()
  ckpts.close()
  same = old.get("step") == latest and old.get("settings") == settings
  return old if same else None


def leaderboard(root="runs", out=None, *, num_samples: int = NUM_SAMPLES, seed: int = 0, nll_k: int = NLL_K,
                nll_examples: int = NLL_EXAMPLES, num_reference: int = NUM_SAMPLES,
                inception_weights: str | None = None, quiet: bool = False) -> str:
  """Evaluates every run under `root` (reusing an eval.json made with the same settings for the same checkpoint)
  and writes the markdown tables to `out` (default root/leaderboard.md)."""
  settings = Settings(num_samples, seed, nll_k, nll_examples, num_reference, inception_weights)
  rows = []
  for workdir in find_runs(root):
    result = _current(workdir, settings.recorded())
    if result is None:
      if not quiet:
        print(f"genjax: evaluating {workdir}", flush=True)
      result = evaluation.evaluate_run(workdir, num_samples=num_samples, seed=seed, nll_k=nll_k,
                                       nll_examples=nll_examples, num_reference=num_reference,
                                       inception_weights=inception_weights)
    rows.append((workdir, result))
  text = render(rows, root)
  provenance.write_text(pathlib.Path(out) if out else pathlib.Path(root) / "leaderboard.md", text)
  return text


def _fmt(value, spec: str) -> str:
  if value is None:
    return "—"
  return format(value, spec)


def render(rows, root) -> str:
  """Markdown: one table per kind of metric, a row per run, then the protocol they share."""
  lines = [f"# genjax leaderboard\n\nEvery run under `{root}/`, scored by `make leaderboard`.\n"]
  for what, title in (("generator", "Generators (samples vs the test split, classifier feature space)"),
                      ("vae", "Likelihoods (binarized test images, nats per image)"),
                      ("autoencoder", "Autoencoders (test split)")):
    picked = [(w, r) for w, r in rows if (what == "generator" and "fid" in r) or (what == "vae" and "nll" in r)
              or (what == "autoencoder" and r.get("kind") == "autoencoder")]
    # A column no run has (Inception FID without the weights, denoising without a DAE) is left out.
    cols = [c for c in COLUMNS[what] if any(r.get(c[0]) is not None for _, r in picked)]
    if not picked:
      continue
    lines.append(f"## {title}\n")
    lines.append("| run | model | data | steps | train time | " + " | ".join(h for _, h, _ in cols) + " |")
    lines.append("|" + "---|" * (5 + len(cols)))
    for workdir, r in picked:
      timing = r.get("training") or {}
      t = f"{timing['train_s']:.0f} s" if timing.get("train_s") is not None else "—"
      cells = [_fmt(r.get(k), f) for k, _, f in cols]
      lines.append(f"| `{workdir.relative_to(root)}` | {r['model']} | {r['dataset']} | {r['step']} | {t} | "
                   + " | ".join(cells) + " |")
    lines.append("")
  protocols = [r["protocol"] for _, r in rows]
  if protocols:
    p = protocols[0]
    card = next((q["feature_network"] for q in protocols if "feature_network" in q), None)
    lines.append("## Protocol\n")
    lines.append(f"- Evaluated on {p['device']}, {p['cpu']}; jax {p['versions']['jax']}, flax {p['versions']['flax']}.")
    trained_on = sorted({d for _, r in rows for d in (r.get("training") or {}).get("devices", [])})
    if trained_on:
      lines.append(f"- Trained on: {', '.join(trained_on)}.")
    if card:
      lines.append(f"- Feature network: {card['name']}, sha256 {card['sha256']}, test accuracy "
                   f"{card['test_accuracy']:.4f}.")
    inc = next((q["inception"] for q in protocols if "inception" in q), None)
    if inc:
      lines.append(f"- Inception FID: {inc['network']}; weights sha256 {inc['weights_sha256'][:16]}"
                   f"{' (pytorch-fid release file)' if inc['is_pytorch_fid_release'] else ''}.")
    nll = next((q for q in protocols if "nll" in q), None)
    if nll:
      lines.append(f"- NLL: {nll['nll']}; {nll['likelihood_examples']} test images. {nll['binarization']}.")
    lines.append("- Train time: wall time of `make train` summed over resumes, compile included, on the device in "
                 "each run's timing.json. Each run's eval.json holds its full protocol.")
  return "\n".join(lines) + "\n"
