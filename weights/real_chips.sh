#!/usr/bin/env bash
# Cut the permissive real images of REALDATA into 32 px pretraining chips (images only, no
# labels, all in the training split): the "real images in pretraining" stage 1 of
# docs/model-experiments.md ("Hyper-MAE on the real scenes too"). Run by weights/build.sh when
# REAL_PRETRAIN=1; prints the chip folders it made, one per line.
#
#   bash weights/real_chips.sh REALDATA OUT_DIR [GFM] [PYTHON]
#
# Sources: ukis_csmask (Sentinel-2, Landsat 7, Landsat 5), eolearn_s2_slovenia (five dates),
# bigearthnet_s2, xarray_spatial_s2 (Patagonia), satsense_s2 (L1C and L2A) and rio_cloudmask_l8
# (Long Island): every permissive set of ../shared/realdata/README.md except the scikit-eo
# images, which stay a test source. EnMAP and North Carolina are evaluation-only.
set -euo pipefail
realdata="$1"
out="$2"
gfm="${3:-gfm}"
python="${4:-python3}"
mkdir -p "$out/grid"

# The ukis files have no CRS or geotransform, which chips need: give copies of them (in the
# scratch folder, the inputs stay as they are) a 30 m grid, as `gdal_translate -a_srs -a_ullr`
# would, without needing the GDAL tools.
"$python" - "$realdata/ukis_csmask" "$out/grid" <<'EOF'
import sys
import warnings
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin

source, grid = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("sentinel2", "landsat7", "landsat5"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(source / f"{name}.tif") as src:
            profile, data = src.profile, src.read()
            descriptions, tags = src.descriptions, src.tags()
    profile.update(driver="GTiff", crs="EPSG:32632", transform=from_origin(0, 512 * 30, 30, 30))
    with rasterio.open(grid / f"{name}.tif", "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
        dst.update_tags(**tags)
EOF

cut() {  # cut NAME SENSOR RASTER...: one chip folder (SENSOR "-": the files' own tags)
  local name="$1" sensor="$2"
  shift 2
  local args=(--size 32 --min-labelled 0 --split 1,0,0 -o "$out/$name")
  [ "$sensor" = "-" ] || args+=(--sensor "$sensor")
  "$gfm" -q tile "$@" "${args[@]}" >/dev/null
  echo "$out/$name"
}

cut ukis_sentinel2 sentinel2-l1c-pre2022 "$out/grid/sentinel2.tif"
cut ukis_landsat7 landsat7-toa "$out/grid/landsat7.tif"
cut ukis_landsat5 landsat5-toa "$out/grid/landsat5.tif"
cut eolearn sentinel2-l1c "$realdata"/eolearn_s2_slovenia/S2_L1C_*.tif
cut bigearthnet - "$realdata"/bigearthnet_s2/*/*.tif
cut patagonia sentinel2-l1c-pre2022 "$realdata/xarray_spatial_s2/s2_6band_10m.tif"
cut satsense_l1c sentinel2-l1c-pre2022 "$realdata/satsense_s2/section_2_sentinel_l1c.tif"
cut satsense_l2a sentinel2-l2a-pre2022 "$realdata/satsense_s2/section_2_sentinel.tif"
cut long_island landsat8-toa "$realdata/rio_cloudmask_l8/LC80130312015295LGN00_toa.tif"
