#!/usr/bin/env bash
# End-to-end demonstration: simulate -> tile -> pretrain -> finetune -> evaluate -> predict.
#
#   bash examples/train-demo.sh            # full demo (a few minutes on 2 CPU cores)
#   DEMO_SCENES=3 DEMO_STEPS=4 DEMO_EPOCHS=1 bash examples/train-demo.sh   # smoke run
#
# Everything is written under demo/ in the repository root (where the TOML files in examples/
# point), or under DEMO_DIR (paths are then passed as overrides); rerunning replaces it.
# A DEMO_DIR that holds anything but an earlier demo is refused, never emptied.
# Needs the `simulate` extra (earthlib).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
demo="${DEMO_DIR:-$root/demo}"
scenes="${DEMO_SCENES:-6}"
steps="${DEMO_STEPS:-60}"
epochs="${DEMO_EPOCHS:-6}"
gfm="${GFM:-gfm}"

marker="$demo/.gfm-demo"
if [ -d "$demo" ] && [ -n "$(ls -A "$demo")" ] && [ ! -f "$marker" ]; then
  echo "$demo: holds files this demo did not make; choose another DEMO_DIR" >&2
  exit 5
fi
rm -rf "$demo"
mkdir -p "$demo/scenes"
touch "$marker"

echo "== simulate $scenes scenes (Sentinel-2 L2A + Sentinel-1) and one held-out scene"
for seed in $(seq 1 "$scenes"); do
  "$gfm" simulate -o "$demo/scenes/scene$seed" --sensor sentinel2-l2a --sensor sentinel1 \
    --size-m 2560 --seed "$seed" >/dev/null
done
"$gfm" simulate -o "$demo/scenes/holdout" --sensor sentinel2-l2a --size-m 2560 --seed 1000 >/dev/null

echo "== tile into 64 px chips with labels"
s2=() s2_labels=() s1=()
for seed in $(seq 1 "$scenes"); do
  s2+=("$demo/scenes/scene$seed/sentinel2-l2a.tif")
  s2_labels+=(--labels "$demo/scenes/scene$seed/sentinel2-l2a_labels.tif")
  s1+=("$demo/scenes/scene$seed/sentinel1.tif")
done
"$gfm" tile "${s2[@]}" "${s2_labels[@]}" --sensor sentinel2-l2a --classes landcover --size 64 \
  --block-size 2 -o "$demo/chips/s2"
"$gfm" tile "${s1[@]}" --sensor sentinel1 --size 64 --min-labelled 0 --block-size 2 \
  -o "$demo/chips/s1"

echo "== pretrain (Hyper-MAE on optical and radar chips)"
"$gfm" pretrain --config "$here/pretrain.toml" --steps "$steps" -o "$demo/runs/pretrain" \
  --set "data.chips=[\"$demo/chips/s2\", \"$demo/chips/s1\"]"

echo "== finetune (land-cover segmentation, best epoch on validation)"
finetune=(--config "$here/finetune.toml" -o "$demo/runs/finetune"
  --set "data.chips=[\"$demo/chips/s2\"]" --set "model.pretrained=\"$demo/runs/pretrain/last.pt\"")
"$gfm" finetune "${finetune[@]}" --epochs "$epochs"
"$gfm" finetune "${finetune[@]}" --evaluate

echo "== predict the held-out scene"
"$gfm" predict "$demo/scenes/holdout/sentinel2-l2a.tif" --model "$demo/runs/finetune/best.pt" \
  -o "$demo/maps/holdout.tif" --window 256 --overlap 32
echo "demo finished: map in $demo/maps/holdout.tif, metrics in $demo/runs/finetune/"
