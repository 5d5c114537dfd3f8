#!/usr/bin/env bash
# A GDAL pipeline: mosaic scenes into a VRT, map it with gfm, then post-process with GDAL/OGR.
#   bash examples/gdal-pipeline.sh SCENE.tif... OUT_DIR
# Needs the GDAL command-line tools (gdalbuildvrt, gdal_translate, ogr2ogr) on PATH.
set -euo pipefail
if [ "$#" -lt 2 ]; then echo "usage: $0 SCENE.tif... OUT_DIR" >&2; exit 2; fi
out="${!#}"
scenes=("${@:1:$#-1}")
mkdir -p "$out"

gdalbuildvrt "$out/mosaic.vrt" "${scenes[@]}"               # one virtual raster, no copy
gfm predict "$out/mosaic.vrt" -o "$out/landcover.tif"        # streamed, bounded memory
gfm predict "$out/mosaic.vrt" -o "$out/landcover.gpkg"       # polygons, dissolved at seams
gdal_translate -of PNG -outsize 25% 25% "$out/landcover.tif" "$out/preview.png"   # quick look
ogr2ogr -f GeoJSON -t_srs EPSG:4326 -where "class_name = 'water'" \
  "$out/water.geojson" "$out/landcover.gpkg"                 # one class, reprojected
