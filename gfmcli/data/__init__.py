"""Multi-sensor scene simulator built on measured reflectance spectra."""
