"""``gfm evaluate``: a class map scored against reference rasters, points or polygons."""
