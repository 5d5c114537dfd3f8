"""COG validation details the staged writer needs beyond rio-cogeo's own check.

rio-cogeo infers "not tiled" from a block as wide as the image, which is also what a tiled image
exactly one tile wide looks like to rasterio; the TIFF's own TileWidth tags decide here.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from pathlib import Path

# rio-cogeo 7 infers "not tiled" from a block as wide as the image, which is also what a tiled
# image exactly one tile wide (e.g. 512 x 600 with 512 x 512 tiles) looks like to rasterio.
_NOT_TILED = re.compile(
    r"(^The file is greater than .* but is not tiled$|^Overview of index \d+ is not tiled$)"
)


_TILE_WIDTH_TAG = 322


def real_cog_errors(path: Path, errors: Sequence[str]) -> list[str]:
    """``errors`` without rio-cogeo's "not tiled" false positives when every IFD has tiles."""
    if not any(_NOT_TILED.match(e) for e in errors):
        return list(errors)
    tiled = _tiff_ifds_tiled(path)
    if not tiled or not all(tiled):
        return list(errors)
    return [e for e in errors if not _NOT_TILED.match(e)]


def _tiff_ifds_tiled(path: Path) -> list[bool]:
    """For each image (IFD) of a TIFF or BigTIFF, whether it carries a TileWidth tag.

    Read from the file's own directory entries because rasterio's ``profile["tiled"]`` and
    ``block_shapes`` cannot tell one 512-wide tile column from 512-wide strips. ``[]`` when the
    file is not a TIFF (or its first directory cannot be read).
    """
    with open(path, "rb") as handle:
        head = handle.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            return []
        big = struct.unpack(order + "H", head[2:4])[0] == 43
        count_fmt, entry_size, offset_fmt = ("Q", 20, "Q") if big else ("H", 12, "I")
        count_size, offset_size = struct.calcsize(count_fmt), struct.calcsize(offset_fmt)
        first = head[8:16] if big else head[4:8]
        offset = struct.unpack(order + offset_fmt, first)[0] if len(first) == offset_size else 0
        tiled: list[bool] = []
        while offset and len(tiled) < 256:  # a bound against cyclic IFD chains
            handle.seek(offset)
            raw = handle.read(count_size)
            if len(raw) < count_size:
                break
            table = handle.read(struct.unpack(order + count_fmt, raw)[0] * entry_size)
            tags = {
                struct.unpack(order + "H", table[i : i + 2])[0]
                for i in range(0, len(table) - 1, entry_size)
            }
            tiled.append(_TILE_WIDTH_TAG in tags)
            raw = handle.read(offset_size)
            offset = struct.unpack(order + offset_fmt, raw)[0] if len(raw) == offset_size else 0
        return tiled
