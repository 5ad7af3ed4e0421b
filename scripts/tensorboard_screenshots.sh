#!/usr/bin/env bash
# The README's TensorBoard screenshots: one seed of the depth study, TensorBoard on loopback, a
# headless Chromium (Debian: apt-get install -y chromium) photographing Custom Scalars and Images.
#   scripts/tensorboard_screenshots.sh [SWEEP_DIR]   (default: trains one into runs/tb_shots)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
SWEEP=${1:-runs/tb_shots}
PORT=${PORT:-6123}
OUT=docs/images
if [ ! -d "$SWEEP" ]; then
    "$BIN/resdeep" train -m experiment=depth_study seed=0 hydra.sweep.dir="$SWEEP"
fi
"$BIN/tensorboard" --logdir "$SWEEP" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
TB=$!
trap 'kill $TB' EXIT
sleep 8  # TensorBoard reads the event files before it answers
for view in custom_scalars images; do
    profile=$(mktemp -d)
    chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --window-size=1400,1000 --virtual-time-budget=15000 \
        --screenshot="$OUT/tensorboard_$view.png" "http://127.0.0.1:$PORT/#$view" >/dev/null 2>&1
    rm -rf "$profile"
    echo "wrote $OUT/tensorboard_$view.png"
done
