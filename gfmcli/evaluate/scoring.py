"""From counted (reference value, map value) pairs to scores: the class correspondence is
applied to that small table, then ``gfmcli.scores.scores_from_confusion`` (the rulebook
training validation uses) scores it. ``Evaluation`` is what ``gfm evaluate`` reports.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gfmcli.errors import ConfigError, InputError
from gfmcli.evaluate.classes import ClassMapping, RefKey
from gfmcli.spectral.identify import ranges_text


@dataclass(frozen=True)
class ClassScore:
    """Scores of one scored class (a map class, or a merged group of map classes).

    ``id`` is the smallest of ``map_ids``, the map classes it scores (one, unless merged)."""

    id: int
    name: str
    iou: float
    recall: float
    precision: float
    support: int
    predicted: int
    map_ids: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        """The map ids as the table shows them: ``4``, or ``1-5`` / ``1,3`` for a merge."""
        return ranges_text(list(self.map_ids or (self.id,)), sep=",")


@dataclass(frozen=True)
class Evaluation:
    """What ``gfm evaluate`` reports; :meth:`to_dict` is the ``--json`` object.

    ``confusion`` rows are reference classes, columns map classes, in the order of ``classes``.
    ``skipped`` counts reference pixels/points that could not be scored, by reason
    (``map_nodata``, ``outside_map``, ``no_class``); ``unmapped`` counts reference pixels/points
    whose class the mapping does not list, by reference class.
    """

    map: str
    reference: str
    kind: str
    unit: str
    overall_accuracy: float
    miou: float
    classes: tuple[ClassScore, ...]
    confusion: np.ndarray
    scored: int
    skipped: dict[str, int]
    unmapped: dict[str, int]
    warnings: tuple[str, ...] = ()

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def unmapped_total(self) -> int:
        return sum(self.unmapped.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; undefined scores (NaN) become ``None`` (JSON null)."""
        return {
            "map": self.map,
            "reference": self.reference,
            "reference_kind": self.kind,
            "unit": self.unit,
            "overall_accuracy": _json_num(self.overall_accuracy),
            "miou": _json_num(self.miou),
            "classes": [
                {
                    "name": c.name,
                    "id": c.id,
                    "map_ids": list(c.map_ids or (c.id,)),
                    "iou": _json_num(c.iou),
                    "recall": _json_num(c.recall),
                    "precision": _json_num(c.precision),
                    "support": c.support,
                    "predicted": c.predicted,
                }
                for c in self.classes
            ],
            "confusion": {
                "labels": [c.name for c in self.classes],
                "ids": [c.id for c in self.classes],
                "matrix": self.confusion.astype(np.int64).tolist(),
            },
            "scored": self.scored,
            "skipped": self.skipped_total,
            "skipped_by_reason": dict(self.skipped),
            "unmapped": self.unmapped_total,
            "unmapped_by_class": dict(self.unmapped),
            "warnings": list(self.warnings),
        }


def _json_num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class Scoring:
    """Turns counted (reference, map) pairs into an Evaluation under a class mapping."""

    def __init__(
        self,
        map_names: dict[int, str],
        map_nodata: int | None,
        ref_names: dict[int, str],
        mapping: ClassMapping | None,
        kind: str,
    ) -> None:
        self.map_names = map_names
        self.map_nodata = map_nodata
        self.ref_names = ref_names
        self.mapping = mapping
        self.kind = kind
        self.warnings: list[str] = []
        # Scored classes: map id -> scored id (merge groups collapse onto their smallest id).
        self.scored_of_map: dict[int, int] = {i: i for i in map_names}
        self.scored_names: dict[int, str] = dict(map_names)
        self.merged: dict[str, int] = {}
        self.rules: dict[RefKey, int] = {}
        if mapping is not None:
            self._apply_merge(mapping)
            self.rules = self._resolve_rules(mapping)

    # map side ----------------------------------------------------------------------------------

    def _map_id(self, value: RefKey, dotted: str) -> int:
        """A map class named in the mapping file, as a map id (ConfigError if unknown)."""
        assert self.mapping is not None
        if isinstance(value, int):
            return value
        by_name = {name: i for i, name in self.map_names.items()}
        if value in by_name:
            return by_name[value]
        known = ", ".join(f"{i} {n!r}" for i, n in sorted(self.map_names.items()))
        known = known or "none: the map has no class names, so use map ids"
        raise ConfigError(
            f"{self.mapping.where(dotted)}: unknown map class {value!r} in {dotted}; the map's "
            f"classes are {known}"
        )

    def _apply_merge(self, mapping: ClassMapping) -> None:
        for name, members in mapping.merge.items():
            ids = [self._map_id(m, f"merge.{name}") for m in members]
            target = min(ids)
            for i in ids:
                self.scored_of_map[i] = target
                self.scored_names.pop(i, None)
            self.scored_names[target] = name
            self.merged[name] = target

    def _scored_for_map(self, value: int) -> int:
        if value not in self.scored_of_map:
            self.scored_of_map[value] = value
            self.scored_names.setdefault(value, str(value))
        return self.scored_of_map[value]

    # reference side ----------------------------------------------------------------------------

    def _target_of(self, key: RefKey) -> int | None:
        """The scored class a reference value counts as; None if it is unmapped."""
        if self.mapping is None:
            if isinstance(key, str):
                by_name = {name: i for i, name in self.scored_names.items()}
                found = by_name.get(key)
                return None if found is None else found
            return self._scored_for_map(key)
        rules = self.rules
        if key in rules:
            return rules[key]
        name = self.ref_names.get(key) if isinstance(key, int) else None
        return rules.get(name) if name is not None else None

    def _ids_taken_as_the_maps(self, pairs: Mapping[tuple[RefKey, int], int]) -> bool:
        """True when, without a mapping, reference ids are scored as map ids on no evidence
        that they mean the same: the reference names none of its classes as the map does (a
        gfm map, or a reference with the map's class names, needs no mapping)."""
        if not any(isinstance(ref, int) for ref, _ in pairs):
            return False
        named_alike = self.ref_names and all(
            self.map_names.get(i) == name for i, name in self.ref_names.items()
        )
        return not named_alike

    def _resolve_rules(self, mapping: ClassMapping) -> dict[RefKey, int]:
        """Reference id or name -> scored class, every name checked (ConfigError, file:line)."""
        resolved: dict[RefKey, int] = {}
        for ref, value in mapping.classes.items():
            dotted = f"classes.{ref}"
            if isinstance(value, str) and value in self.merged:
                target = self.merged[value]
            else:
                target = self._scored_for_map(self._map_id(value, dotted))
            if isinstance(ref, str) and self.kind == "raster":
                by_name = {name: i for i, name in self.ref_names.items()}
                if ref not in by_name:
                    known = ", ".join(f"{i} {n!r}" for i, n in sorted(self.ref_names.items()))
                    known = known or "none: it has no class names, so use reference ids"
                    raise ConfigError(
                        f"{mapping.where(dotted)}: unknown reference class {ref!r}; the "
                        f"reference raster's classes are {known}"
                    )
                ref = by_name[ref]
            resolved[ref] = target
        return resolved

    # ------------------------------------------------------------------------------------------

    def score(
        self,
        pairs: Mapping[tuple[RefKey, int], int],
        extra_skipped: dict[str, int],
        map_path: str,
        reference: str,
        kind: str,
        unit: str,
    ) -> Evaluation:
        from gfmcli.scores import scores_from_confusion

        skipped = Counter(extra_skipped)
        unmapped: Counter = Counter()
        counts: Counter = Counter()
        for (ref, value), n in pairs.items():
            if self.map_nodata is not None and value == self.map_nodata:
                skipped["map_nodata"] += n
                continue
            target = self._target_of(ref)
            if target is None:
                unmapped[self._ref_label(ref)] += n
                continue
            counts[(target, self._scored_for_map(value))] += n
        ids = sorted(self.scored_names)
        index = {i: k for k, i in enumerate(ids)}
        matrix = np.zeros((len(ids), len(ids)), np.int64)
        for (row, col), n in counts.items():
            matrix[index[row], index[col]] += n
        names = [self.scored_names[i] for i in ids]
        scores = scores_from_confusion(matrix, names)
        classes = tuple(
            ClassScore(
                id=i,
                name=name,
                iou=scores["per_class"][name]["iou"],
                recall=scores["per_class"][name]["recall"],
                precision=scores["per_class"][name]["precision"],
                support=scores["per_class"][name]["support"],
                predicted=int(matrix[:, k].sum()),
                map_ids=tuple(sorted(m for m, t in self.scored_of_map.items() if t == i)) or (i,),
            )
            for k, (i, name) in enumerate(zip(ids, names, strict=True))
        )
        present = [c.iou for c in classes if c.support > 0]
        miou = float(np.mean(present)) if present else math.nan
        if self.mapping is None and self._ids_taken_as_the_maps(pairs):
            known = ", ".join(f"{i} {n}" for i, n in sorted(self.map_names.items()))
            self.warnings.append(
                f"{reference}: its class ids are read as the map's ({known}); if it numbers "
                "its classes otherwise, pass --classes with a TOML file that maps them"
            )
        if self.mapping is None and unmapped:
            left = sum(unmapped.values())
            total = left + sum(counts.values())
            examples = ", ".join(str(label) for label, _ in unmapped.most_common(4))
            self.warnings.append(
                f"{reference}: {left} of {total} reference {unit} are in classes the map does "
                f"not name ({examples}) and are not scored; pass --classes with a TOML file "
                "that maps them to the map's classes"
            )
        left_out = sum(skipped.values())
        if not counts and not unmapped:
            raise _nothing_scored(reference, map_path, unit, skipped, left_out)
        if self.mapping is not None and kind != "raster":
            seen = {ref for ref, value in pairs if value != self.map_nodata}
            where = f" where it lies on the map ({left_out} {unit} skipped)" if left_out else ""
            for ref in self.mapping.classes:
                if ref not in seen:
                    self.warnings.append(
                        f"reference class {ref!r} of {self.mapping.source} does not occur in "
                        f"{reference}{where}"
                    )
        return Evaluation(
            map=map_path,
            reference=reference,
            kind=kind,
            unit=unit,
            overall_accuracy=scores["overall_accuracy"],
            miou=miou,
            classes=classes,
            confusion=matrix,
            scored=int(matrix.sum()),
            skipped={k: int(v) for k, v in sorted(skipped.items()) if v},
            unmapped={k: int(v) for k, v in sorted(unmapped.items())},
            warnings=tuple(self.warnings),
        )

    def _ref_label(self, ref: RefKey) -> str:
        name = self.ref_names.get(ref) if isinstance(ref, int) else None
        return f"{ref} {name}" if name else str(ref)


def _nothing_scored(
    reference: str, map_path: str, unit: str, skipped: Counter, left_out: int
) -> InputError:
    """Why a reference scored nothing, with the fix for that reason."""
    if left_out and set(k for k, n in skipped.items() if n) == {"no_class"}:
        return InputError(
            f"{reference}: none of its {left_out} reference {unit} has a class in the field "
            "read; name the field that holds the classes with --field (and the layer, --layer)"
        )
    if left_out:
        reasons = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in skipped.items() if n)
        return InputError(
            f"{reference}: none of its {left_out} reference {unit} lies on a mapped pixel of "
            f"{map_path} ({reasons}); check that the reference covers the map (its CRS and "
            "extent, or the --layer that does)"
        )
    return InputError(
        f"{reference}: the reference has no labelled {unit} on the map {map_path}; check its "
        "nodata (--reference-nodata) and that it covers the map"
    )
