"""AdamW with decoupled weight decay on weights only, and a warmup + cosine learning rate.

The Hyper-MAE recipe (less_vit.md §2.5): AdamW, betas (0.9, 0.95), weight decay 0.05 *not*
applied to biases, normalisation parameters or the learned [CLS]/mask tokens, linear warmup for
``warmup_ratio`` of the steps, then cosine decay to ``min_lr``. The schedule is a pure function
of the step, set on the optimizer before each step, so resuming needs only the step number.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gfmcli.train.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed (matrices, kernels) and not decayed (biases,
    norm weights, tokens: every parameter with fewer than 2 dimensions or a token name)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or name.endswith("token") or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    warmup = round(cfg.warmup_ratio * total_steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(total_steps - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
