#!/usr/bin/env bash
# A GDAL pipeline: mosaic scenes into a VRT, map it with gfm, then post-process with GDAL/OGR.
#   SENSOR=sentinel2-l2a bash examples/gdal-pipeline.sh SCENE.tif... OUT_DIR
# Needs the GDAL command-line tools (gdalbuildvrt, gdal_translate, ogr2ogr) on PATH.
# gdalbuildvrt does not carry band descriptions into the VRT, so gfm is told the sensor.
# A rerun with the same scenes skips the maps (the rebuilt VRT is the same text); with other
# scenes mosaic.vrt is a changed input and gfm will neither keep nor replace the old maps
# (exit 5): use another OUT_DIR.
set -euo pipefail
if [ "$#" -lt 2 ]; then echo "usage: $0 SCENE.tif... OUT_DIR" >&2; exit 2; fi
out="${!#}"
sensor="${SENSOR:-sentinel2-l2a}"
scenes=("${@:1:$#-1}")
mkdir -p "$out"

gdalbuildvrt "$out/mosaic.vrt" "${scenes[@]}"               # one virtual raster, no copy
gfm predict "$out/mosaic.vrt" --sensor "$sensor" -o "$out/landcover.tif"    # streamed
gfm predict "$out/mosaic.vrt" --sensor "$sensor" -o "$out/landcover.gpkg"   # polygons
gdal_translate -of PNG -outsize 25% 25% "$out/landcover.tif" "$out/preview.png"   # quick look
ogr2ogr -f GeoJSON -t_srs EPSG:4326 -where "class_name = 'water'" \
  "$out/water.geojson" "$out/landcover.gpkg"                 # one class, reprojected
