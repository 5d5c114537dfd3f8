"""What a fine-tuning run trains: its classes, its labels' kind and its task model.

The task model starts from a pretrained checkpoint's encoder (and its head, when the task and
the classes match) or from scratch; ``gfm finetune`` and ``gfm finetune --evaluate`` both check
the chips' labels here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from gfmcli.contract import ClassInfo
from gfmcli.errors import ConfigError, InputError
from gfmcli.train.config import (
    ARCHITECTURE_KEYS,
    FinetuneConfig,
    encoder_overrides,
    sizes_from_model_table,
)
from gfmcli.train.datasets import ChipFolder

log = logging.getLogger(__name__)


def resolve_classes(cfg: FinetuneConfig, folders: list[ChipFolder]) -> tuple[ClassInfo, ...]:
    """The output classes: ``[[classes]]`` from the config, else the chips' class list; an
    InputError if chips hold class ids the list lacks."""
    if cfg.model.task == "regression":
        return ()
    if cfg.classes:
        classes = tuple(ClassInfo(c.id, c.name, c.color) for c in cfg.classes)
    else:
        merged: dict[int, ClassInfo] = {}
        for folder in folders:
            for c in folder.meta.get("classes", []):
                merged.setdefault(
                    int(c["id"]), ClassInfo(int(c["id"]), c["name"], tuple(c["color"]))
                )
        classes = tuple(merged[i] for i in sorted(merged))
    ids = {c.id for c in classes}
    if len(ids) != len(classes):
        raise ConfigError("[[classes]] lists the same class id twice")
    for folder in folders:
        present = set(folder.meta.get("class_ids_present", []))
        unknown = sorted(present - ids)
        if unknown:
            raise InputError(
                f"{folder.path}: labels hold class id(s) {', '.join(map(str, unknown))} that are "
                f"not in the class list ({', '.join(map(str, sorted(ids)))}); add them to "
                "[[classes]] or fix the labels"
            )
    if len(classes) < 2 and cfg.model.task != "regression":
        raise InputError(f"{cfg.model.task} needs at least 2 classes; found {len(classes)}")
    return classes


def check_labels(cfg: FinetuneConfig, folders: list[ChipFolder]) -> None:
    """An InputError unless every folder holds labels of the kind ``model.task`` trains on."""
    want = "regression" if cfg.model.task == "regression" else "classes"
    for folder in folders:
        kind = folder.meta.get("task")
        if kind is None:
            raise InputError(f"{folder.path}: chips have no labels; run `gfm tile --labels ...`")
        if kind != want:
            what = "numeric targets" if kind == "regression" else "class ids"
            raise InputError(
                f"{folder.path}: labels are {what} but model.task is {cfg.model.task!r}"
            )


def build_task_model(cfg: FinetuneConfig, num_outputs: int, classes: Sequence[ClassInfo] = ()):
    """The task model, with the pretrained encoder's weights when ``model.pretrained`` is set.

    A pretrained checkpoint with a head of the same task and the same classes (ids and names,
    in order) keeps its head too; any other head is dropped with a warning that says so, so
    fine-tuning shipped segmentation weights on other classes never loses the head silently.
    """
    from gfmcli.model.checkpoint import load_model
    from gfmcli.model.tasks import build_model, model_config_for

    head: dict[str, Any] = {}
    if cfg.model.head_width is not None and cfg.model.task != "classification":
        head = {"width": cfg.model.head_width, "min_width": min(32, cfg.model.head_width)}
    if cfg.model.pretrained is None:
        overrides = encoder_overrides(cfg.model)
        if cfg.model.channel_embedding is not None:  # ablation switch, fine-tuning only
            overrides["channel_embedding"] = cfg.model.channel_embedding
        with sizes_from_model_table():
            config = model_config_for(
                cfg.model.name,
                cfg.model.task,
                num_outputs=num_outputs,
                encoder_overrides=overrides,
                **head,
            )
            return build_model(config), None
    given = [
        k for k in (*ARCHITECTURE_KEYS, "channel_embedding") if getattr(cfg.model, k) is not None
    ]
    if given:
        raise ConfigError(
            f"model.{given[0]} cannot be set with model.pretrained: the architecture comes from "
            "the pretrained checkpoint"
        )
    pretrained, contract = load_model(cfg.model.pretrained)
    spec = pretrained.spec
    overrides = {**spec.encoder_overrides, "drop_path_rate": cfg.model.drop_path}
    config = model_config_for(
        spec.encoder, cfg.model.task, num_outputs=num_outputs, encoder_overrides=overrides, **head
    )
    model = build_model(config)
    model.encoder.load_state_dict(pretrained.encoder.state_dict(), strict=True)
    if pretrained.head is not None:
        _reuse_head(model, pretrained, contract, cfg, classes)
    return model, contract


def _reuse_head(model, pretrained, contract, cfg: FinetuneConfig, classes) -> None:
    """Load ``pretrained``'s head into ``model`` when task and classes match; else warn."""
    source = cfg.model.pretrained
    theirs = [(c.id, c.name) for c in contract.classes]
    ours = [(c.id, c.name) for c in classes]
    if contract.task == cfg.model.task and theirs == ours:
        try:
            model.head.load_state_dict(pretrained.head.state_dict(), strict=True)
        except RuntimeError:  # another head width: the classes match but the shapes do not
            pass
        else:
            log.info(
                "%s: keeping its %s head (the same %d classes)", source, contract.task, len(ours)
            )
            return
    names = ", ".join(name for _, name in theirs) or "no classes"
    log.warning(
        "%s: its %s head (%s) does not match this run's %s classes, so it is dropped and a new "
        "head is trained on the pretrained encoder",
        source,
        contract.task,
        names,
        cfg.model.task,
    )
