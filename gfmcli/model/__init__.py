"""The LESS ViT model library: encoders (``embedding``, ``less``, ``full``, ``pfm``, ``layers``),
their configuration (``config``) and registry (``registry.create_model``), Hyper-MAE (``mae``),
heads and task models (``heads``, ``tasks``), and checkpoints (``checkpoint``).

Import from the modules themselves: this package re-exports nothing, so importing one light
module (``gfmcli.model.config``) does not load torch.
"""
