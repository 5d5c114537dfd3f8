"""``gfm pretrain``: Hyper-MAE on chip folders, resumable exactly, on one CPU or many GPUs.

Recipe (less_vit.md §2.5): AdamW (0.9, 0.95), weight decay 0.05 on weights only, warmup + cosine,
gradient clipping 1.0, gradient accumulation, bf16/fp16 autocast on CUDA (fp32 on the CPU unless
asked). The loss is the Hyper-MAE loss over hidden tokens with each band's *own* modality (no
hard-coded "last two bands are radar", §5.2), restricted to valid pixels so nodata padding at
raster edges is never a reconstruction target.

Exact resume: ``last.pt`` carries the encoder (as a ``pretrain`` GfmModel checkpoint that
``gfm finetune`` loads), the decoder, the optimizer, the step and micro-batch counters and, per
rank, the torch/numpy/python RNG states and the masking generator. The data order is a pure
function of (seed, epoch) and the position, so N steps straight equal N/2 + resume + N/2
bit for bit on the CPU.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader

from gfmcli.errors import InputError
from gfmcli.runtime import distributed as D
from gfmcli.tomlconf import config_to_dict
from gfmcli.train.base import Trainer
from gfmcli.train.config import PretrainConfig, encoder_overrides, sizes_from_model_table
from gfmcli.train.datasets import ChipDataset, GroupedBatchSampler, collate
from gfmcli.train.optim import build_optimizer, lr_at, set_lr
from gfmcli.train.run import CHECKPOINT, model_inputs
from gfmcli.train.state import check_resume_config

log = logging.getLogger(__name__)

# Settings that must not change between a run and its resumption (train.steps may grow).
# fmt: skip below: a table, one entry per line (ruff format would add 6 lines)
RESUME_KEYS = [
    "model", "data.chips", "data.batch_size", "data.splits", "data.augment", "optim", "train.seed",
]  # fmt: skip


@dataclass
class PretrainResult:
    """Summary of a pretraining run (for the CLI's last line and for tests)."""

    steps: int
    final_loss: float
    seconds: float
    chips_per_second: float
    checkpoint: Path


def masked_mae_loss(out: Any, valid: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``hyper_mae_loss`` of a ``MaeOutput`` with the (B, H, W) pixel mask ``valid`` laid out
    as tokens, so pixels without data teach nothing. Equals ``out.loss`` when all are valid."""
    from gfmcli.model.mae import hyper_mae_loss

    b, n = valid.shape[0], out.pred.shape[2]
    v = valid.reshape(b, valid.shape[1] // patch_size, patch_size, -1, patch_size)
    v = v.permute(0, 1, 3, 2, 4).reshape(b, 1, n, patch_size * patch_size)
    return hyper_mae_loss(
        out.pred, out.target, out.position_mask, out.channel_mask, out.is_radar, valid=v
    )


def pretrain(cfg: PretrainConfig, *, resume: bool = False, command: str = "") -> PretrainResult:
    """Run (or resume) the pretraining described by ``cfg``; see the module docstring."""
    return _Pretrainer.launch(cfg, resume=resume, command=command)


class _Pretrainer(Trainer):
    """The masked-reconstruction step, on a step count (``train.steps``), resumable."""

    cfg: PretrainConfig

    def __init__(self, cfg: PretrainConfig, ctx: D.DistContext, resume: bool, command: str):
        from gfmcli.model.mae import HyperMAE
        from gfmcli.model.tasks import build_model, model_config_for

        super().__init__(cfg, ctx, command)
        self.dataset = ChipDataset(
            self.folders, cfg.data.splits, augment=cfg.data.augment, seed=cfg.train.seed
        )
        if len(self.dataset) == 0:
            raise InputError(
                f"no chips in split(s) {', '.join(cfg.data.splits)} of {', '.join(cfg.data.chips)}"
            )
        # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
        self.sampler = GroupedBatchSampler(
            self.dataset.group_of, cfg.data.batch_size, shuffle=True, drop_last=True,
            seed=cfg.train.seed, rank=ctx.rank, world_size=ctx.world_size,
        )  # fmt: skip
        if len(self.sampler) == 0:
            raise InputError(
                f"{len(self.dataset)} chip(s) make no full batch of {cfg.data.batch_size} per "
                f"process ({ctx.world_size} process(es)); lower data.batch_size"
            )
        self.open_run_dir(resume=resume)
        with sizes_from_model_table():
            model_config = model_config_for(
                cfg.model.name, "pretrain", encoder_overrides=encoder_overrides(cfg.model)
            )
            self.model = build_model(model_config)
            self.mae = HyperMAE(
                self.model.encoder,
                decoder_depth=cfg.model.decoder_depth,
                decoder_dim=cfg.model.decoder_dim,
                decoder_heads=cfg.model.decoder_heads,
                mask_ratio=cfg.model.mask_ratio,
                channel_mask_ratio=cfg.model.channel_mask_ratio,
                decoder_drop_path=cfg.model.decoder_drop_path,
            ).to(ctx.device)
        self.optimizer = build_optimizer(self.mae, cfg.optim)
        self.generator = torch.Generator(device=ctx.device)
        self.generator.manual_seed(cfg.train.seed * 1009 + ctx.rank)
        fp16 = getattr(self.autocast, "fast_dtype", None) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.step = self.micro = 0
        self.chips_seen = 0
        if resume:
            self._restore()
        self.net = self.wrap(self.mae)

    def _restore(self) -> None:
        from gfmcli.model.checkpoint import read_checkpoint
        from gfmcli.train.state import set_rng_state

        data = read_checkpoint(self.out / CHECKPOINT)
        extra = data.extra
        if data.contract.task != "pretrain" or "decoder" not in extra:
            raise InputError(f"{self.out / CHECKPOINT}: not a gfm pretraining checkpoint")
        check_resume_config(extra["config"], config_to_dict(self.cfg), RESUME_KEYS)
        self.mae.load_state_dict({**data.state_dict, **extra["decoder"]}, strict=True)
        self.optimizer.load_state_dict(extra["optimizer"])
        self.step, self.micro = int(extra["step"]), int(extra["micro"])
        self.chips_seen = int(extra.get("chips_seen", 0))
        states = extra["rng"]
        if len(states) != self.ctx.world_size:
            log.warning(
                "resuming with %d process(es), saved with %d: the random streams differ",
                self.ctx.world_size,
                len(states),
            )
        state = states[self.ctx.rank % len(states)]
        set_rng_state(state["global"])
        self.generator.set_state(state["generator"])

    def run(self) -> PretrainResult:
        cfg, ctx = self.cfg, self.ctx
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            collate_fn=collate,
            num_workers=cfg.data.num_workers,
            generator=torch.Generator(),
        )
        per_epoch = len(self.sampler)
        total = cfg.train.steps
        accumulate = cfg.optim.accumulate
        bar = self.progress(total=total, initial=self.step, unit="step")
        started, window_loss, loss = time.perf_counter(), [], float("nan")
        start_step, start_chips = self.step, self.chips_seen
        self.mae.train()
        while self.step < total:
            epoch, position = divmod(self.micro, per_epoch)
            self.sampler.set_epoch(epoch, position)
            self.dataset.set_epoch(epoch)
            for batch in loader:
                window_loss.append(self._micro_step(batch, accumulate))
                self.micro += 1
                self.chips_seen += batch["image"].shape[0] * ctx.world_size
                if self.micro % accumulate:
                    continue
                grad_norm = self._optimizer_step(total)
                loss = self._reduce_mean(sum(window_loss) / len(window_loss))
                window_loss = []
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if self.step % cfg.train.log_every == 0 or self.step == total:
                    # fmt: skip below: arguments grouped by meaning (ruff format would add 5 lines)
                    self.log.write({
                        "step": self.step, "epoch": epoch, "loss": loss,
                        "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                        "chips": self.chips_seen,
                        "seconds": round(time.perf_counter() - started, 3),
                    })  # fmt: skip
                if self.step % cfg.train.checkpoint_every == 0 or self.step == total:
                    self._checkpoint()
                if self.step >= total:
                    break
        bar.close()
        seconds = time.perf_counter() - started
        chips = self.chips_seen - start_chips
        result = PretrainResult(
            self.step,
            loss,
            seconds,
            chips / seconds if seconds > 0 else 0.0,
            self.out / CHECKPOINT,
        )
        if ctx.is_main:
            # fmt: skip below: arguments grouped by meaning (ruff format would add 7 lines)
            self.log.write({"summary": True, "steps": self.step, "final_loss": loss,
                            "seconds": round(seconds, 3), "steps_done": self.step - start_step,
                            "chips_per_second": result.chips_per_second})  # fmt: skip
        return result

    def _micro_step(self, batch: dict[str, Any], accumulate: int) -> float:
        group = self.dataset.groups[batch["group"]]
        inputs = model_inputs(batch, group, self.ctx.device)
        valid = batch["valid"].to(self.ctx.device)
        sync = (self.micro + 1) % accumulate == 0
        context = (
            cast(Any, self.net).no_sync() if self.ctx.distributed and not sync else nullcontext()
        )
        with context:
            with self.autocast:
                out = self.net(**inputs, generator=self.generator)
            loss = masked_mae_loss(out, valid, self.mae.encoder.patch_size)
            self.scaler.scale(loss / accumulate).backward()
        return float(loss.detach())

    def _optimizer_step(self, total: int) -> float:
        set_lr(self.optimizer, lr_at(self.step, total, self.cfg.optim))
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.mae.parameters() if p.grad is not None]
        clip = self.cfg.optim.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _reduce_mean(self, value: float) -> float:
        if not self.ctx.distributed:
            return value
        total = D.all_reduce_sum(torch.tensor([value], dtype=torch.float64), self.ctx)
        return float(total.item()) / self.ctx.world_size

    def _checkpoint(self) -> None:
        from gfmcli.train.state import rng_state

        state = {"global": rng_state(), "generator": self.generator.get_state()}
        states = D.gather_objects(state, self.ctx)
        if not self.ctx.is_main:
            return
        contract = self.contract(
            self.model,
            self.folders,
            model_name=self.cfg.model.name,
            task="pretrain",
            steps=self.step,
        )
        decoder = {k: v for k, v in self.mae.state_dict().items() if not k.startswith("encoder.")}
        extra = {
            "decoder": decoder,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "micro": self.micro,
            "chips_seen": self.chips_seen,
            "rng": states,
            "config": config_to_dict(self.cfg),
        }
        self.save(self.out / CHECKPOINT, self.model, contract, extra)
