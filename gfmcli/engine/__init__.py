"""Streaming inference engine: window planning, Numba blending, batching, devices, runner."""
