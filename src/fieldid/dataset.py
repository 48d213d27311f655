"""Labelled image sets: a folder in LFW layout (``<identity>/<image>``) or a CSV.

The CSV has a header with at least ``path`` and ``identity``; ``display_name`` and ``group``
(a demographic label used only by evaluation) are optional. Relative paths are relative to the
CSV's folder. Used by enrollment and by the evaluation harness.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from fieldid.errors import DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    identity: str
    display_name: str | None = None
    group: str | None = None


def read_labelled(source: str | Path) -> list[LabelledImage]:
    src = Path(source)
    if not src.exists():
        raise DatasetError(f"{src} does not exist", code="dataset.not_found")
    if src.is_dir():
        return _read_folder(src)
    if src.suffix.lower() == ".csv":
        return _read_csv(src)
    raise DatasetError(
        f"{src} is neither a folder in <identity>/<image> layout nor a .csv file",
        code="dataset.unsupported",
    )


def _read_folder(root: Path) -> list[LabelledImage]:
    # A folder holding labels.csv (as ../shared/faces/lfw-dev does) is read through it.
    if (root / "labels.csv").is_file() and not any(
        p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir() if p.is_file()
    ):
        return _read_csv(root / "labels.csv")
    items: list[LabelledImage] = []
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in sorted(person_dir.iterdir()):
            if img.is_file() and img.suffix.lower() in IMAGE_SUFFIXES:
                items.append(LabelledImage(img, person_dir.name))
    if not items:
        raise DatasetError(
            f"{root} holds no images in <identity>/<image> layout", code="dataset.empty"
        )
    return items


def _read_csv(path: Path) -> list[LabelledImage]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        missing = {"path", "identity"} - fields
        if missing:
            raise DatasetError(
                f"{path}: the header needs columns path and identity (missing: "
                f"{', '.join(sorted(missing))})",
                code="dataset.bad_header",
            )
        items = []
        for line, row in enumerate(reader, start=2):
            p, ident = (row.get("path") or "").strip(), (row.get("identity") or "").strip()
            if not p or not ident:
                raise DatasetError(
                    f"{path}, line {line}: path and identity must both be given",
                    code="dataset.bad_row",
                    line=line,
                )
            full = Path(p) if Path(p).is_absolute() else path.parent / p
            items.append(
                LabelledImage(
                    full,
                    ident,
                    (row.get("display_name") or "").strip() or None,
                    (row.get("group") or "").strip() or None,
                )
            )
    if not items:
        raise DatasetError(f"{path} lists no images", code="dataset.empty")
    return items
