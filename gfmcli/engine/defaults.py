"""Default run settings shared by the CLI and the library (one place to change them).

The window/overlap/batch defaults were chosen from ``bench/pipeline.py`` on a 2-core CPU with
the shipped tiny model (see docs/benchmarks.md): 512-pixel windows keep the per-window overhead
low, and a 64-pixel overlap (four patches) hides window seams under the cosine ramp.
"""

DEFAULT_MODEL = "landcover-tiny"
DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64
DEFAULT_BATCH_SIZE = 2
