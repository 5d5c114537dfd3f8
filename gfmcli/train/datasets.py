"""Chip folders as torch datasets, and a batch sampler that keeps one band set per batch.

A chip folder (from ``gfm tile``) holds one band set; a run may mix several (Sentinel-2 and
Sentinel-1, or two optical sensors). A batch must hold one band set, because the model gets one
wavelength list and one GSD per forward pass, so ``GroupedBatchSampler`` batches within groups
of identical band sets and shuffles the order of the batches. It is deterministic from
``(seed, epoch)`` and shards *batches* across processes (every process gets the same number,
as DDP needs), and it can start mid-epoch so a resumed run sees exactly the batches it would
have seen.

Items are normalised with the folder's ``stats.json`` (``(x - mean) / std``, the convention of
the model contract); invalid pixels become 0 and are reported in ``valid``. Segmentation labels
are mapped from class ids to class indices 0..K-1, unlabelled pixels to ``IGNORE_INDEX`` (255).
Augmentation (random flips and 90° rotations, the same on image, mask and labels) draws from a
generator seeded by ``(seed, epoch, index)``, so it does not depend on worker count or position.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch.utils.data import Dataset, Sampler

from gfmcli.errors import InputError
from gfmcli.model.bands import Bands
from gfmcli.train.labels import IGNORE_INDEX
from gfmcli.train.stats import NormStats, read_stats


@dataclass(frozen=True)
class ChipFolder:
    """A chip folder's metadata (``chips.json``) and normalisation (``stats.json``)."""

    path: Path
    meta: dict[str, Any]
    stats: NormStats

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b["name"] for b in self.meta["bands"])

    @property
    def band_key(self) -> tuple:
        """Identity of the band set: names, wavelengths and GSD."""
        return (
            self.band_names,
            tuple(b["wavelength_nm"] for b in self.meta["bands"]),
            float(self.meta["gsd"]),
        )

    @property
    def batch_key(self) -> tuple:
        """What chips must share to be stacked in one batch: the band set and the chip size
        (a 12-band Sentinel-2 folder of 32 px chips and one of 64 px chips are two groups)."""
        return (*self.band_key, self.meta.get("size"))

    def records(self, splits: Sequence[str]) -> list[dict[str, Any]]:
        return [r for r in self.meta["chips"] if r["split"] in splits]


def open_chip_folder(path: str | Path) -> ChipFolder:
    """Read a chip folder; InputError naming it if it is missing, empty or not from gfm tile."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: chip folder not found; create it with `gfm tile ... -o {path}`")
    meta_path = path / "chips.json"
    if not meta_path.is_file():
        raise InputError(f"{path}: no chips.json; is it a folder written by `gfm tile`?")
    try:
        meta = json.loads(meta_path.read_text())
        missing = [k for k in ("bands", "chips", "gsd") if k not in meta]
        if missing:
            raise KeyError(", ".join(missing))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{meta_path}: malformed ({exc}); re-run `gfm tile`") from exc
    if not isinstance(meta["chips"], list) or not meta["chips"]:
        raise InputError(f"{path}: the chip folder holds no chips")
    _check_records(path, meta_path, meta["chips"])
    size = meta.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise InputError(
            f"{meta_path}: chip size {size!r} is not a positive pixel count; re-run `gfm tile`"
        )
    stats = read_stats(path / "stats.json")
    if stats.names != tuple(b["name"] for b in meta["bands"]):
        raise InputError(f"{path}: stats.json bands differ from chips.json; re-run `gfm tile`")
    return ChipFolder(path, meta, stats)


def _check_records(folder: Path, meta_path: Path, records: list[Any]) -> None:
    """Every chip record names its image (and label) by a relative path inside ``folder``.

    A chips.json is data anyone can hand over with a chip folder: a path that climbs out
    (``../../etc/x.tif``) or is absolute would make training read files outside the folder.
    """
    root = folder.resolve()
    for number, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("image"), str):
            raise InputError(f"{meta_path}: chip {number} has no image path; re-run `gfm tile`")
        for key in ("image", "label"):
            rel = record.get(key)
            if rel is None:
                continue
            if not isinstance(rel, str):
                raise InputError(f"{meta_path}: chip {number} {key} must be a path")
            target = (root / rel).resolve()
            if Path(rel).is_absolute() or root not in target.parents:
                raise InputError(
                    f"{meta_path}: chip {number} names {rel!r}, outside the chip folder; chip "
                    "paths must stay inside it (re-run `gfm tile`)"
                )


def augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flips and 90° rotation on every array (last two axes are H, W)."""
    k = int(rng.integers(4))
    flip_h, flip_v = bool(rng.integers(2)), bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip_h:
            a = a[..., :, ::-1]
        if flip_v:
            a = a[..., ::-1, :]
        out.append(np.ascontiguousarray(a))
    return out


class ChipDataset(Dataset):
    """Chips of the given ``splits`` from several folders; ``task`` picks the target.

    ``task``: None (images only, pretraining), "segmentation", "classification" or
    "regression". ``class_ids`` (for the class tasks) lists the label ids in output order.
    """

    def __init__(
        self,
        folders: Sequence[ChipFolder],
        splits: Sequence[str],
        task: str | None = None,
        class_ids: Sequence[int] = (),
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.folders = list(folders)
        self.task = task
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        keys: list[tuple] = []
        self.groups: list[Bands] = []
        self.items: list[tuple[int, dict[str, Any]]] = []
        self.group_of: list[int] = []
        for f, folder in enumerate(self.folders):
            if folder.batch_key not in keys:
                keys.append(folder.batch_key)
                bands = folder.meta["bands"]
                self.groups.append(
                    Bands(
                        wavelengths=tuple(float(b["wavelength_nm"]) for b in bands),
                        modalities=tuple(b.get("modality", "optical") for b in bands),
                        gsd=float(folder.meta["gsd"]),
                        names=folder.band_names,
                    )
                )
            for record in folder.records(splits):
                if task is not None and "label" not in record:
                    raise InputError(f"{folder.path}: chips have no labels; tile with --labels")
                self.items.append((f, record))
                self.group_of.append(keys.index(folder.batch_key))
        lut = np.full(256, IGNORE_INDEX, np.int64)
        for index, class_id in enumerate(class_ids):
            lut[class_id] = index
        self._lut = lut

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        f, record = self.items[index]
        folder = self.folders[f]
        with rasterio.open(folder.path / record["image"]) as src:
            image = src.read().astype(np.float32)
        valid = np.isfinite(image).all(axis=0)
        mean = np.asarray(folder.stats.mean, np.float32)[:, None, None]
        std = np.asarray(folder.stats.std, np.float32)[:, None, None]
        image = np.where(valid, (image - mean) / std, 0.0).astype(np.float32)
        arrays = [image, valid]
        if self.task in ("segmentation", "regression"):
            with rasterio.open(folder.path / record["label"]) as src:
                label = src.read(1)
            arrays.append(label)
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            arrays = augment(arrays, rng)
        item = {
            "image": torch.from_numpy(arrays[0]),
            "valid": torch.from_numpy(arrays[1]),
            "group": self.group_of[index],
            "index": index,
        }
        if self.task == "segmentation":
            item["target"] = torch.from_numpy(self._lut[arrays[2]])
        elif self.task == "regression":
            item["target"] = torch.from_numpy(arrays[2].astype(np.float32))
        elif self.task == "classification":
            item["target"] = torch.tensor(int(self._lut[record["class"]]))
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a batch of one band group (the sampler guarantees it)."""
    batch = {k: torch.stack([it[k] for it in items]) for k in ("image", "valid")}
    if "target" in items[0]:
        batch["target"] = torch.stack([it["target"] for it in items])
    batch["group"] = items[0]["group"]
    batch["index"] = torch.tensor([it["index"] for it in items])
    return batch


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of one band group, shuffled per epoch from ``seed``, sharded across ranks.

    Every rank gets ``len(self)`` batches per epoch (the batch list is truncated to a multiple of
    ``world_size``); ``start`` skips that many of this rank's batches (resume mid-epoch).
    """

    def __init__(
        self,
        groups: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        self.groups = list(groups)
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        batches: list[list[int]] = []
        for group in sorted(set(self.groups)):
            members = [i for i, g in enumerate(self.groups) if g == group]
            if self.shuffle:
                members = [members[i] for i in rng.permutation(len(members))]
            for s in range(0, len(members), self.batch_size):
                chunk = members[s : s + self.batch_size]
                if len(chunk) == self.batch_size or not self.drop_last:
                    batches.append(chunk)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        usable = len(batches) // self.world_size * self.world_size
        return batches[:usable]

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._all_batches()[self.rank :: self.world_size]
        yield from mine[self.start :]

    def __len__(self) -> int:
        """Batches per epoch for this rank (before ``start`` is applied)."""
        total = 0
        for group in set(self.groups):
            n = self.groups.count(group)
            total += n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return total // self.world_size
