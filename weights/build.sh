#!/usr/bin/env bash
# Rebuild weights/landcover-tiny.pt from nothing but gfm's own commands (see weights/README.md).
#
#   bash weights/build.sh            # about 45 minutes on 2 CPU cores (measured 2026-12-03)
#   REAL_PRETRAIN=1 OUTPUT=/tmp/r.pt bash weights/build.sh
#                                    # the measured variant with the permissive real images in
#                                    # the Hyper-MAE pretraining too (weights/real_chips.sh;
#                                    # docs/model-experiments.md, "Hyper-MAE on the real scenes too")
#
# Stage 1 (simulate -> tile -> Hyper-MAE pretrain -> fine-tune) uses simulated scenes only; stage 2
# (weights/train_landcover.py) fine-tunes that model on simulated scenes with atmospheres, clouds
# and snow plus the permissively licensed real scenes of REALDATA (default ../shared/realdata;
# see weights/README.md for which sources and why only those).
#
# Scratch data goes to weights/build/ (ignored by git). Deterministic for a given machine and
# torch build: scene seeds 1..N (training) and the chip split seed are fixed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/build"
scenes="${SCENES:-16}"
gfm="${GFM:-gfm}"
python="${PYTHON:-python3}"
realdata="${REALDATA:-$here/../../shared/realdata}"
output="${OUTPUT:-$here/landcover-tiny.pt}"
real_pretrain="${REAL_PRETRAIN:-0}"

rm -rf "$build"
mkdir -p "$build/scenes"
start=$(date +%s)

echo "== simulate $scenes scenes of 5.12 km for Sentinel-2 L2A, Landsat 8, EnMAP and Sentinel-1"
for seed in $(seq 1 "$scenes"); do
  "$gfm" simulate -o "$build/scenes/s$seed" --size-m 5120 --seed "$seed" \
    --sensor sentinel2-l2a --sensor landsat8 --sensor enmap --sensor sentinel1 >/dev/null
done

echo "== tile"
s2=() s2_labels=() l8=() enmap=() s1=()
for seed in $(seq 1 "$scenes"); do
  d="$build/scenes/s$seed"
  s2+=("$d/sentinel2-l2a.tif"); s2_labels+=(--labels "$d/sentinel2-l2a_labels.tif")
  l8+=("$d/landsat8.tif"); enmap+=("$d/enmap.tif"); s1+=("$d/sentinel1.tif")
done
"$gfm" tile "${s2[@]}" "${s2_labels[@]}" --sensor sentinel2-l2a --classes landcover \
  --size 64 --seed 0 -o "$build/chips/s2"
"$gfm" tile "${l8[@]}" --sensor landsat8 --size 32 --min-labelled 0 -o "$build/chips/l8"
"$gfm" tile "${enmap[@]}" --sensor enmap --size 32 --min-labelled 0 -o "$build/chips/enmap"
"$gfm" tile "${s1[@]}" --sensor sentinel1 --size 64 --min-labelled 0 -o "$build/chips/s1"

more=()  # pretrain.toml's chip folders, or those plus the real images' (REAL_PRETRAIN=1)
if [ "$real_pretrain" = 1 ]; then
  echo "== tile the permissive real images for pretraining (images only)"
  # an assignment, not a process substitution, so that set -e stops on the script's failure
  real=$(bash "$here/real_chips.sh" "$realdata" "$build/chips/real" "$gfm" "$python")
  chips=("$build/chips/s2" "$build/chips/l8" "$build/chips/enmap" "$build/chips/s1")
  while read -r folder; do chips+=("$folder"); done <<<"$real"
  listed=$(printf "'%s'," "${chips[@]}")  # TOML literal strings: no escapes in paths
  more=(--set "data.chips=[${listed%,}]")
fi

echo "== pretrain"
# ${more[@]+...}: an empty array under set -u is an error in bash before 4.4 (macOS /bin/bash)
"$gfm" pretrain --config "$here/pretrain.toml" ${more[@]+"${more[@]}"}
echo "== finetune"
"$gfm" finetune --config "$here/finetune.toml"
"$gfm" finetune --config "$here/finetune.toml" --evaluate

cp "$build/runs/finetune/test_metrics.json" "${output%.pt}.test-metrics.json"

echo "== stage 2: simulated + permissive real scenes (weak labels, atmospheres, clouds, snow)"
"$python" "$here/train_landcover.py" --init "$build/runs/finetune/best.pt" --realdata "$realdata" \
  --steps 3000 --batch-size 8 --scenes 24 --scene-seed 2000 --real-weight 0.4 --lr 1.5e-4 \
  --keep-init 0.1 --seed 7 --window-by-gsd 25:128 -o "$output"
echo "== done in $(( $(date +%s) - start )) s"
sha256sum "$output"
