"""The runtime below mapping and training: devices, precision, and torchrun processes."""
