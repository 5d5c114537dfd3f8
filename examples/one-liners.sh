#!/usr/bin/env bash
# Shell one-liners with gfm (run from the repository root; each line stands alone).
set -euo pipefail

# Map every GeoTIFF of a folder; rerunning skips the maps that exist (resume).
gfm predict examples/data/ -o maps/ --keep-going

# Paths from find (or any list): one per line on stdin.
find examples/data -maxdepth 1 -name '*.tif' | gfm predict - -o maps/

# Class polygons instead of a raster, and a probabilities COG beside the map.
gfm predict examples/data/s2-l2a-example.tif -o maps/example.gpkg
gfm predict examples/data/s2-l2a-example.tif -o maps/example-probs.tif --probabilities

# Check what a run would do (outputs, windows, estimated peak memory) without running it.
gfm predict examples/data/s2-l2a-example.tif -o maps/ --dry-run

# Per-patch embeddings as a half-precision COG.
gfm embed examples/data/s2-l2a-example.tif -o maps/example.emb.tif --dtype float16
