"""Runs that were trained and scored by hand (make train, make eval), gathered into one dated result file.

    .venv/bin/python benchmarks/collect.py --tag conditional-sweep runs/cond/* --note "what was compared and why"

Each run directory gives a record: its model, the config keys that differ from the model's default config of today
(so the record says how to train it again), the steps, its timing.json (training time, compile, images/s, devices)
and the scores of its eval.json (and of eval-raw.json, a GAN's generator without its average, where make eval
--raw_generator wrote one). Nothing is trained or evaluated here: a run without eval.json is refused, unless
`--stopped` says the runs were stopped before their end on purpose (a probe that showed enough): such a record has
no scores, only the last step its log shows, the median images/s it logged and the in-loop scores (train.eval_every).
Results: benchmarks/results/<device>-<date>-<tag>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite import dated_result, during_training, flat_config, this_device  # noqa: E402 -- benchmarks/suite.py

from genjax import config as cfg  # noqa: E402
from genjax.eval import provenance  # noqa: E402

SCORES = ("fid", "precision", "recall", "coverage", "class_kl", "classes_covered", "label_accuracy", "nll",
          "neg_elbo", "mse")


def record(run_dir: pathlib.Path, stopped: bool = False) -> dict:
  """One run's record (`stopped`: a run stopped before its end, recorded without scores); raises ValueError naming
  what is missing."""
  needs = ("config.json", "metrics.jsonl") if stopped else ("config.json", "timing.json", "eval.json")
  missing = [f for f in needs if not (run_dir / f).exists()]
  if missing:
    raise ValueError(f"{run_dir}: no {', '.join(missing)} (train it with make train and score it with make eval)")
  config = json.loads((run_dir / "config.json").read_text())["config"]
  model = config["model"]["name"]
  default = flat_config(json.loads(cfg.model_config(model).to_json()))
  keys = {k: v for k, v in flat_config(config).items() if default.get(k, object()) != v}
  args = " ".join(f"--config.{k}={str(v).lower() if isinstance(v, bool) else str(v).replace(' ', '')}"
                  for k, v in keys.items())
  command = (f"make train MODEL={model} WORKDIR=runs/{run_dir.name}" + (f' ARGS="{args}"' if args else "")
             + f" && make eval WORKDIR=runs/{run_dir.name}")
  if stopped:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_sec"] for r in rows if "images_per_sec" in r]
    return {"run": run_dir.name, "model": model, "set": keys, "steps": config["train"]["steps"],
            "stopped_at": max(r["step"] for r in rows),
            "images_per_sec": round(statistics.median(rates), 1) if rates else None,
            "during_training": during_training(run_dir), "command": command}
  timing = json.loads((run_dir / "timing.json").read_text())
  result = json.loads((run_dir / "eval.json").read_text())
  raw = run_dir / "eval-raw.json"  # make eval --raw_generator: a GAN's generator without its average
  raw_scores = {k: v for k, v in json.loads(raw.read_text()).items() if k in SCORES} if raw.exists() else None
  return {"run": run_dir.name, "model": model, "set": keys, "steps": timing["steps"], "train_s": timing["train_s"],
          "compile_s": timing.get("compile_s"), "images_per_sec": timing.get("images_per_sec"),
          "devices": timing.get("devices"), "scores": {k: result[k] for k in SCORES if k in result},
          **({"raw_scores": raw_scores} if raw_scores else {}), "eval_settings": result.get("settings"),
          "command": command}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("runs", nargs="+", help="run directories, each with config.json, timing.json and eval.json")
  p.add_argument("--tag", required=True, help="the result file's name after its date")
  p.add_argument("--note", default="", help="what was compared, and what else shared the machine")
  p.add_argument("--out_dir", default=str(HERE / "results"))
  p.add_argument("--shared_cpu", action="store_true", help="other jobs shared the machine while the runs trained")
  p.add_argument("--stopped", action="store_true",
                 help="the runs were stopped before their end: record their in-loop scores, without make eval's")
  a = p.parse_args(argv)
  try:
    records = [record(pathlib.Path(r), a.stopped) for r in a.runs]
  except ValueError as e:
    print(f"collect: error: {e}", file=sys.stderr)
    return 2
  where = this_device()
  out = dated_result(a.out_dir, where, a.tag)
  provenance.write_json(out, {"kind": "collected-runs", "date": datetime.date.today().isoformat(), **where,
                              **provenance.environment(), "note": a.note, "shared_cpu": a.shared_cpu,
                              "records": records}, indent=1)
  print(f"collect: {len(records)} runs -> {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
