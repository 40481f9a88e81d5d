#!/usr/bin/env bash
# The GPU check of issue 13, in one time-bounded script (under 6 minutes on one H200):
#   (a) the machine: nvidia-smi, versions          (b) the digits demo on CUDA: whole run vs training
#   (c) the CIFAR-10 spec on 50,000 synthetic images, 10 epochs (fp32 cold + warm; bf16, channels_last)
#   (d) kill/resume on CUDA (deterministic and default settings)
#   (e) training-loop throughput vs a minimal PyTorch loop (fp32, bf16, channels_last)
# Everything goes to $OUT (default /tmp/gpu_check); the figures to $OUT/gpu_results.md, also printed.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --cpu --small   # the same steps on CPU with tiny sizes (a dry run)
#
# No network is needed: trainflow's dependencies that the machine lacks are installed from .whl/
# (made beforehand by benchmarks/gpu_wheels.sh) into $SITE with --no-deps, and trainflow is imported
# from this checkout through a shim folder (trainflow/flows -> flows/, trainflow/tasks -> tasks/),
# without pip install -e. Prefect runs a temporary server with PREFECT_HOME under /tmp.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
DEVICE=cuda SMALL=0 LIMIT_SCALE=1
for arg in "$@"; do
  case "$arg" in
    --cpu) DEVICE=cpu LIMIT_SCALE=4 ;;  # a 2-core CPU is far slower than the GPU machine
    --small) SMALL=1 ;;
    *) echo "usage: $0 [--cpu] [--small]" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-/tmp/gpu_check}"
PY="${PYTHON:-python3}"
WHEELS="${WHEELS:-.whl}"  # the wheels of benchmarks/gpu_wheels.sh
WORK="$(mktemp -d /tmp/gpu_check.XXXXXX)"
SITE="${SITE:-$WORK/site}"
mkdir -p "$OUT"
START=$SECONDS
LOG="$OUT/gpu_check.log"
RESULTS="$OUT/gpu_results.md"
: > "$LOG"
say() { echo "[$((SECONDS - START)) s] $*" | tee -a "$LOG"; }
# run LIMIT_S NAME CMD...: time-bounded step; its output goes to $OUT/NAME.txt; never stops the script
run() {
  local limit=$(($1 * LIMIT_SCALE)) name=$2; shift 2
  say "step $name (limit ${limit} s): $*"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local rc=$?
  say "step $name: exit $rc after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (TIMED OUT)')"
  tail -n 5 "$OUT/$name.txt" | sed 's/^/    /' | tee -a "$LOG"
  return 0
}
left() { echo $((330 * LIMIT_SCALE - (SECONDS - START))); }  # seconds left of the 5.5-minute plan

# ---------------------------------------------------------------- environment
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  say "installing $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE"
  timeout 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl >> "$LOG" 2>&1 || say "wheel install failed (see $LOG)"
fi
mkdir -p "$WORK/shim/trainflow"
for f in "$REPO"/trainflow/*; do ln -s "$f" "$WORK/shim/trainflow/"; done
ln -s "$REPO/flows" "$WORK/shim/trainflow/flows"
ln -s "$REPO/tasks" "$WORK/shim/trainflow/tasks"
export PYTHONPATH="$SITE:$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
# Python puts the current folder first on sys.path for `python -` and `python -m`: from the repository
# root that would find trainflow/ without flows/ and tasks/, so those run from $WORK.
export PREFECT_HOME="$WORK/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false MPLBACKEND=Agg
export PREFECT_LOGGING_LEVEL=WARNING PYTHONUNBUFFERED=1
unset PREFECT_API_URL

{
  echo "== machine"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
  echo "== cpu: $(nproc) cores, $(free -g 2>/dev/null | awk '/Mem:/{print $2}') GiB"
  echo "== versions"
  (cd "$WORK" && $PY - <<'PY' 2>&1
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "numpy", "pandas", "sklearn", "prefect", "great_expectations", "pydantic", "skops", "imblearn"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {m.__version__} ({m.__file__})")
    except Exception as exc:
        print(f"{name}: NOT IMPORTABLE: {exc!r}")
import torch
print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import trainflow.flows.cli, trainflow.tasks.image, trainflow.tasks.sequence  # the whole import chain
print("trainflow imports: ok", trainflow.flows.cli.__file__)
PY
  )
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt" | tee -a "$LOG" | tail -n 14
grep -q "trainflow imports: ok" "$OUT/environment.txt" || { say "trainflow does not import: see $OUT/environment.txt"; exit 1; }

# ---------------------------------------------------------------- sizes
if [ "$SMALL" = 1 ]; then
  DIGITS_SET="train.epochs=2"; CIFAR_N=2000; CIFAR_TEST=500; CIFAR_EPOCHS=1
  RESUME_ARGS="--n 256 --epochs 3 --kill-after 1 --pause 1"; LOOP_N=256; LOOP_REPEATS=1
else
  DIGITS_SET="train.epochs=20"; CIFAR_N=50000; CIFAR_TEST=10000; CIFAR_EPOCHS=10
  RESUME_ARGS="--n 8192 --epochs 5 --kill-after 2 --pause 2"; LOOP_N=50000; LOOP_REPEATS=3
fi

# (b) digits on the device: cold (first run of the process: imports, server start) and warm
run 110 digits $PY $REPO/benchmarks/neural_demos.py $REPO/flows/specs/digits.yaml --set "train.device=$DEVICE" \
  --set "$DIGITS_SET" --repeats 2 --out "$WORK/runs" --json "$OUT/digits.json"

# (c) CIFAR-10 spec on synthetic images
run 60 cifar_data $PY $REPO/benchmarks/synth_cifar.py "$WORK/cifar" --train "$CIFAR_N" --test "$CIFAR_TEST"
VARIANTS=()
[ "$(left)" -gt 200 ] && VARIANTS=(--variant "bf16:train.precision=bf16" --variant "channels_last:train.channels_last=true")
run 170 cifar $PY $REPO/benchmarks/neural_demos.py $REPO/flows/specs/cifar10.yaml --set "train.device=$DEVICE" \
  --set "data.path=$WORK/cifar" --set "train.epochs=$CIFAR_EPOCHS" --repeats 2 "${VARIANTS[@]}" \
  --out "$WORK/runs" --json "$OUT/cifar.json"

# (d) kill/resume on the device
run 100 resume $PY $REPO/benchmarks/cuda_resume.py --device "$DEVICE" $RESUME_ARGS --workdir "$WORK/resume"

# (e) loop throughput vs a plain PyTorch loop (data on the device for both)
run 60 loop_fp32 $PY $REPO/benchmarks/train_epoch_overhead.py --device "$DEVICE" --n "$LOOP_N" --repeats "$LOOP_REPEATS"
if [ "$(left)" -gt 40 ]; then
  run 45 loop_bf16 $PY $REPO/benchmarks/train_epoch_overhead.py --device "$DEVICE" --n "$LOOP_N" --repeats "$LOOP_REPEATS" --precision bf16
fi
if [ "$(left)" -gt 40 ]; then
  run 45 loop_channels_last $PY $REPO/benchmarks/train_epoch_overhead.py --device "$DEVICE" --n "$LOOP_N" --repeats "$LOOP_REPEATS" --channels-last
fi

# ---------------------------------------------------------------- the figures
{
  echo "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE$([ "$SMALL" = 1 ] && echo ', --small sizes'))"
  echo
  echo '```'
  grep -E "NVIDIA H|Driver Version|^python|^torch|^prefect|^numpy|cuda available|cores" "$OUT/environment.txt" | sed 's/^|//'
  echo '```'
  echo
  echo "## Digits demo ($DIGITS_SET), whole run vs training"; echo; grep '^|' "$OUT/digits.txt"; echo
  echo "## CIFAR-10 spec, $CIFAR_N synthetic train / $CIFAR_TEST test images, $CIFAR_EPOCHS epochs"; echo
  grep '^|' "$OUT/cifar.txt"; echo
  echo "## Kill/resume"; echo; echo '```'; grep -E "^(deterministic|default):" "$OUT/resume.txt"; echo '```'; echo
  echo "## Training loop vs plain PyTorch loop ($LOOP_N images, batch 128)"; echo; echo '```'
  for f in loop_fp32 loop_bf16 loop_channels_last; do [ -f "$OUT/$f.txt" ] && grep -E "^(plain|ratio)" "$OUT/$f.txt"; done
  echo '```'; echo
  echo "Total time of the check: $((SECONDS - START)) s. Step logs: gpu_check.log and one .txt per step."
} > "$RESULTS"
cat "$RESULTS"
rm -rf "$WORK"
