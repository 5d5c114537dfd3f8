"""Raster and vector I/O: reading windows against a band contract, staged atomic writers."""
