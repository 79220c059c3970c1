#!/usr/bin/env bash
# Regenerate the dashboard screenshots in screenshots/ (PNG, 160x48 cells, DejaVu Sans Mono).
set -euo pipefail
cd "$(dirname "$0")/.."
SMOLVM_SCREENSHOTS="$PWD/screenshots" cargo test --test tui screenshots_render_to_png -- --nocapture
ls -l screenshots/*.png
