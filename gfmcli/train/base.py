"""The skeleton of a gfm training run; ``gfm pretrain`` and ``gfm finetune`` fill it in.

A run opens its chip folders, claims its run folder (refusing to clobber an earlier run), seeds
torch, trains the model under the configured precision (wrapped for DDP when torchrun started
several processes), logs metrics from rank 0, shows a progress bar only on a terminal, and saves
a checkpoint whose contract names the chips, the command and the configuration. What differs -
the data, the model, the step and the validation - lives in the subclasses, so both trainers
share one way of doing each of these (and a fix to one reaches both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gfmcli.contract import ClassInfo, ModelContract
from gfmcli.errors import ConfigError, UsageError
from gfmcli.runtime import distributed as D
from gfmcli.runtime.devices import autocast_context
from gfmcli.tomlconf import config_to_dict
from gfmcli.train.datasets import ChipFolder, open_chip_folder
from gfmcli.train.run import (
    METRICS,
    MetricsLog,
    contract_bands,
    prepare_run_dir,
    removed_if_empty_on_failure,
    save_config,
)


class Trainer:
    """One training run of ``cfg`` in the torchrun process ``ctx``; subclasses define ``run``.

    ``launch`` is the entry point: it sets up (and always tears down) the process group and
    removes a run folder the run created but left empty because it failed early.
    """

    def __init__(self, cfg: Any, ctx: D.DistContext, command: str) -> None:
        self.cfg, self.ctx, self.command = cfg, ctx, command
        self.out = Path(cfg.output.dir)
        self.folders: list[ChipFolder] = [open_chip_folder(p) for p in cfg.data.chips]
        self.log = MetricsLog(self.out / METRICS, ctx.is_main)

    @classmethod
    def launch(cls, cfg: Any, **kwargs: Any) -> Any:
        """Run ``cls(cfg, ctx, **kwargs).run()`` inside the distributed setup."""
        try:
            ctx = D.init_distributed(cfg.train.device)
        except UsageError as exc:
            raise ConfigError(f"train.device = {cfg.train.device!r}: {exc}") from exc
        try:
            with removed_if_empty_on_failure(Path(cfg.output.dir)):
                return cls(cfg, ctx, **kwargs).run()
        finally:
            D.shutdown(ctx)

    def run(self) -> Any:
        raise NotImplementedError

    def open_run_dir(self, *, resume: bool = False, resumable: bool = True) -> None:
        """Claim ``output.dir`` (rank 0; the others wait), seed torch, set up the precision.

        Called once the data has been checked, so a run refused for its chips leaves no
        folder behind; the seed comes before the model is built, so its weights are the same
        on every process.
        """
        if self.ctx.is_main:
            prepare_run_dir(
                self.out, resume=resume, overwrite=self.cfg.output.overwrite, resumable=resumable
            )
        D.barrier(self.ctx)
        torch.manual_seed(self.cfg.train.seed)
        try:
            self.autocast = autocast_context(self.ctx.device, self.cfg.train.precision)
        except UsageError as exc:
            raise ConfigError(f"train.precision = {self.cfg.train.precision!r}: {exc}") from exc

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DDP when several processes train (unused parameters allowed: an absent
        modality's embedder gets no gradient), else ``module`` itself."""
        if not self.ctx.distributed:
            return module
        device_ids = [self.ctx.device] if self.ctx.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(
            module, device_ids=device_ids, find_unused_parameters=True
        )

    def progress(self, iterable: Any = None, **kwargs: Any) -> Any:
        """A tqdm bar if ``train.progress`` and rank 0, only when stderr is a terminal."""
        from tqdm import tqdm

        enabled = self.cfg.train.progress and self.ctx.is_main
        # disable=None: no bar when stderr is not a terminal (a log file, cron's mail)
        return tqdm(iterable, disable=None if enabled else True, leave=False, **kwargs)

    def contract(
        self,
        model: Any,
        folders: list[ChipFolder],
        *,
        model_name: str,
        task: str,
        classes: tuple[ClassInfo, ...] = (),
        **provenance: Any,
    ) -> ModelContract:
        """The contract of ``model`` trained on ``folders``' bands; provenance starts with the
        command, the configuration and every chip folder of the run."""
        return ModelContract(
            model_name=model_name,
            model_config=model.config,
            task=task,
            sensor="+".join(dict.fromkeys(f.meta["sensor"] for f in folders)),
            bands=contract_bands(folders),
            gsd=float(folders[0].meta["gsd"]),
            patch_size=model.patch_size,
            classes=classes,
            window=chip_window(folders, model.patch_size),
            provenance={
                "command": self.command,
                "config": config_to_dict(self.cfg),
                "chips": [str(f.path) for f in self.folders],
                **provenance,
            },
        )

    def save(
        self, path: Path, model: Any, contract: ModelContract, extra: dict[str, Any] | None = None
    ) -> None:
        """Write the checkpoint, then the effective configuration beside it."""
        from gfmcli.model.checkpoint import save_checkpoint

        save_checkpoint(path, model, contract, extra)
        save_config(self.out, self.cfg)


def chip_window(folders: list[ChipFolder], patch_size: int) -> int | None:
    """The window a model trained on ``folders`` maps in: their largest chip size, in whole
    patches (the contract's ``window``); None when no folder records a size of a patch or more
    (chip folders from before sizes were recorded)."""
    sizes = [f.meta["size"] for f in folders if f.meta.get("size")]
    window = max(sizes, default=0) // patch_size * patch_size
    return window or None
