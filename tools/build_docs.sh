#!/usr/bin/env bash
# Build the docs site strictly: a broken link, anchor, snippet or API reference fails it.
#   tools/build_docs.sh [SITE_DIR]      (default build/site; needs the [docs] extra)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v .venv/bin/python || command -v python3)}"
NO_MKDOCS_2_WARNING=1 "$PYTHON" -m mkdocs build --strict --site-dir "$(realpath -m "${1:-build/site}")"
