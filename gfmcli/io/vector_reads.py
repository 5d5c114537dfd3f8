"""Reading vector files (GeoPackages, shapefiles, GeoJSON) without writing beside them.

GDAL's GeoPackage driver, as pyogrio's GDAL 3.12 opens a file read-only, writes the dataset
metadata it found into a new ``<file>.aux.xml`` (PAM) when it closes the file: ``gfm info``,
a resume check or ``gfm evaluate --reference`` would leave an 8 kB copy of gfm's tags beside a
GeoPackage, or a sidecar beside a user's reference file. Every vector read of gfm runs with
PAM off; the metadata itself lives in the GeoPackage and reads the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def reading_vectors() -> Iterator[None]:
    """PAM off in pyogrio's GDAL while the block runs; the setting before is restored."""
    import pyogrio

    before = pyogrio.get_gdal_config_option("GDAL_PAM_ENABLED")
    pyogrio.set_gdal_config_options({"GDAL_PAM_ENABLED": "NO"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"GDAL_PAM_ENABLED": before})
