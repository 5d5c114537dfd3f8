"""gfm: batch mapping with the LESS ViT geospatial foundation model."""

__version__ = "0.1.0"
