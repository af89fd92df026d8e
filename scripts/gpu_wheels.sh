#!/usr/bin/env bash
# Wheels for a GPU machine without network, for `scripts/gpu_check.sh --wheels DIR`.
#
#   scripts/gpu_wheels.sh DIR PYTHON_VERSION [HAVE_FILE]
#
# Run it on a machine with network, inside this project's installed virtualenv. It takes every
# package of that environment (`pip freeze`: the pinned versions the study is measured with),
# leaves out torch and NVIDIA's libraries (the GPU machine brings its own CUDA build of torch)
# and any package named in HAVE_FILE (one name per line: what the GPU machine already has, e.g.
# from its `pip list`), and downloads each as a binary wheel for CPython PYTHON_VERSION on
# x86-64 Linux. Packages published only as source are built here with a local interpreter of
# that version (pyenv's, if present), then the project itself is added as a wheel.
set -euo pipefail
DIR="$1" PYV="$2" HAVE="${3:-/dev/null}"
mkdir -p "$DIR"
norm() { tr 'A-Z_.' 'a-z--'; }
skip="$(norm <"$HAVE"; printf 'torch\ntriton\nbiomedquant\n')"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform linux_x86_64)
builder=""
for c in "$HOME"/.pyenv/versions/"$PYV"*/bin/python "python$PYV"; do
  if "$c" -c "import sys; assert sys.version.startswith('$PYV')" 2>/dev/null; then
    builder="$c"
    break
  fi
done
pip freeze --exclude-editable | sed 's/ @.*//' | while IFS= read -r req; do
  name="$(echo "${req%%==*}" | norm)"
  case "$name" in nvidia-*) continue ;; esac
  grep -qx "$name" <<<"$skip" && continue
  if ! pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
    --implementation cp "${plat[@]}" -d "$DIR" "$req" 2>/dev/null; then
    [ -n "$builder" ] || { echo "no wheel for $req and no python$PYV to build it" >&2; exit 1; }
    "$builder" -m pip wheel -q --no-deps -w "$DIR" "$req" || exit 1
  fi
done
pip wheel -q --no-deps -w "$DIR" "$(cd "$(dirname "$0")/.." && pwd)"
du -sh "$DIR"
