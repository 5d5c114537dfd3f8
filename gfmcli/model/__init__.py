"""LESS ViT model library: encoders, Hyper-MAE, heads, registry and checkpoints."""
