"""Workspace configuration (``fieldid.toml``): purposes, pipeline, quality gate, search.

The file is written once by ``fieldid init`` with every setting and its default, commented, so the
person who runs the workspace can see and change what is in force.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldid.detect.acquire import DetectBudget
from fieldid.errors import WorkspaceError
from fieldid.index.config import DEFAULT_INDEX_TOML, IndexConfig
from fieldid.keys.sources import KeysSpec
from fieldid.pipeline import LEGACY_EMBEDDER, PipelineSpec
from fieldid.probe import IntakeLimits
from fieldid.quality import QualityGate

CONFIG_NAME = "fieldid.toml"

#: Default target false-positive identification rate: the chance that a search of someone who is
#: not enrolled returns any candidate. The threshold that meets it is recomputed for every search
#: from the model's calibration and the current gallery size (fieldid.calibration; issue 6).
DEFAULT_TARGET_FPIR = 0.01
#: Default target FMR for a 1:1 verification (one comparison).
DEFAULT_VERIFY_TARGET_FMR = 0.001

#: Enrollment dedupe threshold per model: an enrolled image scoring at or above this against a
#: *different* person opens a possible-duplicate review item. dlib-resnet-v1 at 0.97: on all
#: 7.28 M different-person pairs of the LFW development set (3,823 images), 6 score this high
#: (FMR 8.2e-7; the top ones are photographs of two people in which the face acquired was the
#: other person), while 9.8 % of same-person pairs do: it catches the same capture or a
#: near-identical one under two identities, not every resemblance. Review items are leads for a
#: person too; nothing is merged.
#: mobileface-v2 at 0.80, chosen the same way: of the same 7.28 M pairs 4 score this high (FMR
#: 5.5e-7; each is a photograph of two people in which the face acquired was the other person,
#: which dlib scores above 0.95 too), and 6.5 % of same-person pairs do.
DEFAULT_DUPLICATE_THRESHOLDS = {"dlib-resnet-v1": 0.97, "mobileface-v2": 0.80}

DEFAULT_TOML = (
    """\
# fieldid workspace configuration. Every setting is shown with its default.

[use]
# Purposes an operator may state for a search or verification. Anything else is refused.
purposes = ["field-identification", "evaluation"]
# The officer must confirm the person was told (that their photo is searched, why, and how to
# ask for redress) before a search runs: true refuses a search without it; false records
# whether it was given either way.
notice_required = true

[pipeline]
detector = "dlib-hog"          # dlib-hog | dlib-mmod | yunet (needs detector_model)
detector_model = ""            # ONNX file for yunet (fieldid models install yunet-2023mar)
fallback_detector = "dlib-mmod" # tried when the detector finds nothing ("" for none)
fallback_upsample_schedule = [0]
detect_max_side = 320          # detect on a copy this long (px); landmarks at full size
upsample_schedule = [0, 1, 2]  # upsampling steps tried in turn for small faces
# Work budget per photo (docs/security.md, "Limits per request"): a detection step examines at
# most detect_max_pixels (width × height × 4^upsample), so a large photo is searched on reduced
# copies only; a face found there is re-detected at full resolution inside its region (at most
# refine_max_pixels). The fallback detector looks only at the fallback_max_regions regions the
# detector scored at least fallback_min_score (its threshold is 0), each on a copy of
# fallback_max_pixels; no step starts after detect_time_budget_s seconds of CPU time.
detect_max_pixels = 5000000
refine_max_pixels = 1000000
fallback_min_score = -0.35
fallback_max_regions = 1
fallback_max_pixels = 65536
detect_time_budget_s = 2.0
# The face model; a gallery holds templates of one model only (docs/models.md):
#   mobileface-v2  MobileFace v2, bundled (MIT): the default for new workspaces
#   dlib-resnet    dlib's ResNet, bundled: the model of workspaces made before; a fieldid.toml
#                  that names no embedder keeps it
#   onnx           an ArcFace-style model file you supply (onnx_path; then `fieldid calibrate`)
embedder = "mobileface-v2"
flip = false                   # fuse the template of the mirrored face too (twice the cost)
onnx_path = ""                 # with embedder = "onnx": path to an ArcFace-style 112×112 model
# onnx_channel_order = "RGB"; onnx_mean = 0.0; onnx_std = 1.0

[search]
top_k = 10
# Chance that a search of someone who is not enrolled returns any candidate (FPIR). The threshold
# that meets it is recomputed for every search from the model's calibration, the number of
# templates in the gallery now and the probe's quality: a larger gallery needs a higher threshold.
# Calibration: W/calibration/<model>.json (`fieldid calibrate`), else the one bundled for
# mobileface-v2 and dlib-resnet (fitted on public LFW faces; docs/calibration.md).
target_fpir = 0.01
# A 1:1 verification is "above threshold" at this false match rate per comparison.
verify_target_fmr = 0.001
# A fixed cosine-similarity threshold overrides target_fpir (the estimated FPIR at it is still
# shown). A model without a calibration (e.g. an ONNX model before `fieldid calibrate`) needs one.
# Scores of different models are not comparable: FMR 1e-3 is at about 0.36 for mobileface-v2 and
# 0.925 for dlib-resnet (their bundled calibrations).
# threshold = 0.36

"""
    + DEFAULT_INDEX_TOML
    + """
[quality_gate]
min_inter_eye_px = 60.0
max_abs_yaw_deg = 30.0
max_abs_pitch_deg = 25.0
max_abs_roll_deg = 30.0
min_sharpness_score = 20
min_luminance = 50.0
max_luminance = 215.0
max_clipped_fraction = 0.15
max_faces = 1
min_unified = 30

[enrollment]
min_inter_eye_px = 16.0        # gallery images below this are refused as unusable
# An image matching a *different* person at or above this cosine similarity opens a
# possible-duplicate review item (still enrolled as asked; nothing is merged). Unset: the model's
# default (mobileface-v2: 0.80, dlib-resnet-v1: 0.97; each FMR under 1e-6 on LFW). Another model
# needs one set here, or dedupe is off and the enrollment report says so.
# duplicate_threshold = 0.80

[intake]
max_bytes = 20971520
max_pixels = 40000000

[adjudication]
# Purposes whose confirmations need a second, different operator (two-person rule).
two_person_purposes = []
# No one may confirm a candidate scoring below this. Unset: the search's own threshold.
# min_confirm_score = 0.5

[retention]
# How long each class of data is kept ("90m", "24h", "30d"); `fieldid purge` and the server's
# scheduled purge enforce it. audit_entries may not be shorter than 183d (six months).
probe_images = "24h"
probe_templates = "24h"
unidentified_searches = "30d"       # searches that ended without identification
confirmed_identifications = "365d"  # searches with a human-confirmed identification
audit_entries = "183d"
exports = "30d"                     # files written by audit export, redress export, report
document_images = "0m"              # data page photos and chip data: gone when the encounter ends
document_checks = "30d"             # records of document checks, from the encounter's end
purge_probe_at_adjudication = true  # a probe of a search closed unidentified goes at once

[database]
# Where people, records, searches, accounts and the audit log are stored. Unset: the SQLite file
# fieldid.db in this folder. A PostgreSQL server: url = "postgresql://fieldid@db.example:5432/fieldid"
# (keep the password out of this file: PGPASSWORD, ~/.pgpass, or FIELDID_DATABASE_URL, which
# overrides this setting). See docs/deploy-postgresql.md.
# url = ""

[keys]
# Biometric data (faces, templates, probe photos) is encrypted at rest under per-record keys,
# wrapped by a key-encryption key (KEK) kept OUTSIDE this folder. Unset: the file
# ~/.config/fieldid/keys/<workspace id>.key (FIELDID_KEY_DIR or XDG_CONFIG_HOME move it), made
# by `fieldid init`. Back it up: without it this workspace's biometric data cannot be read.
# Or name one source (FIELDID_KEK, FIELDID_KEK_FILE, FIELDID_KEK_COMMAND override it):
# file = "/etc/fieldid/kek.key"             # a key file (yours, mode 0600)
# env = "AGENCY_FIELDID_KEK"                # an environment variable holding the key
# command = "agency-kms-client get fieldid" # a command that prints it (KMS or HSM)
# See docs/security.md.

[receipt]
# Printed on the receipt handed to the person photographed (GET /receipt/{code} in the web app).
agency = "The agency that carried out this check"
# What the receipt says about asking for redress (the default text is ReceiptText.redress):
# redress = "You may ask what was done with your photo ... quoting the receipt code above."
contact = "the data-protection office of the agency that ran the search"
# Address the receipt's QR code opens; {code} is replaced by the receipt code. Empty: the QR
# code holds the receipt code itself.
redress_url = ""

[transparency]
# `fieldid transparency`: every count under this (k) is shown as "< k" in the public report,
# and further counts are withheld so that none can be worked back from a total (at least 3).
min_cell = 10

[location]
# Off unless set here. On: when a photo is taken for a search, the field app asks the phone for
# its location and rounds it ON THE PHONE to the nearest multiple of grid_deg degrees of
# latitude and of longitude (0.01: cells about 1.1 km north-south, 0.8 km east-west at 45°);
# only that rounded value is sent and stored with the search. Guidance frames never carry a
# location. The server refuses a value that is not on the grid (location.not_coarse).
enabled = false
grid_deg = 0.01
# With location on, a search that sends no location is refused (location.missing).
required = true
# How long a supervisor's approval (or a request waiting for one) stays valid, in minutes.
approval_minutes = 60
# The transparency report counts searches per cell of this size (degrees).
report_grid_deg = 0.1

[location.rules]
# Sensitive areas (`fieldid location add`): per kind, "approval" (a search there needs a
# supervisor's prior approval with a reason) or "refuse" (no search there).
school = "approval"
hospital = "approval"
place_of_worship = "approval"
court = "approval"
event = "refuse"
"""
)


def _budget(p: dict[str, Any]) -> DetectBudget:
    """``[pipeline]``'s detection work budget (defaults: ``DetectBudget()``)."""
    d = DetectBudget()
    return DetectBudget(
        max_pixels=int(p.get("detect_max_pixels", d.max_pixels)),
        refine_max_pixels=int(p.get("refine_max_pixels", d.refine_max_pixels)),
        fallback_min_score=float(p.get("fallback_min_score", d.fallback_min_score)),
        fallback_max_regions=int(p.get("fallback_max_regions", d.fallback_max_regions)),
        fallback_max_pixels=int(p.get("fallback_max_pixels", d.fallback_max_pixels)),
        time_s=float(p.get("detect_time_budget_s", d.time_s)),
    )


def with_database_url(toml: str, url: str) -> str:
    """``toml`` (a fieldid.toml's text) with ``[database] url`` set to ``url``."""
    value = '"' + url.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = toml.splitlines()
    section = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[database]" and stripped.split("=")[0].strip() in ("url", "# url"):
            lines[i] = f"url = {value}"
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, "", "[database]", f"url = {value}"]) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _setting(lines: list[str], section: str, key: str) -> int | None:
    """Index of the line ``key = …`` in ``[section]`` (not commented out), or None."""
    current = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped
        elif current == f"[{section}]" and stripped.split("=")[0].strip() == key:
            return i
    return None


def _set(lines: list[str], section: str, key: str, value: object) -> None:
    """Set ``key`` in ``[section]`` (the section is added when absent)."""
    line = f"{key} = {_toml_value(value)}"
    at = _setting(lines, section, key)
    if at is not None:
        # Keep the line's own comment, aligned as before where it fits.
        m = re.match(r'^\s*[\w.]+\s*=\s*("(?:[^"\\]|\\.)*"|[^#\s]+)(\s+#.*)?$', lines[at])
        if m and m.group(2):
            comment = m.group(2).strip()
            column = lines[at].index(comment)
            line = line.ljust(column) if len(line) < column else line + " "
            line += comment
        lines[at] = line
        return
    for i, existing in enumerate(lines):
        if existing.strip() == f"[{section}]":
            lines.insert(i + 1, line)
            return
    lines.extend(["", f"[{section}]", line])


def with_model(
    toml: str, settings: dict[str, Any], *, threshold: float | None = None, why: str = ""
) -> str:
    """``toml`` (a fieldid.toml's text) naming another face model: ``[pipeline]`` ``embedder``,
    ``flip`` and ``onnx_path`` (and ``onnx_*`` options) from ``settings``. A fixed ``[search]
    threshold`` and ``[enrollment] duplicate_threshold`` are scores of the model before (scores of
    two models are not comparable), so they are commented out, saying ``why``; ``threshold``:
    the new model's fixed search threshold, if one is wanted."""
    lines = toml.splitlines()
    _set(lines, "pipeline", "embedder", settings["embedder"])
    _set(lines, "pipeline", "flip", bool(settings.get("flip", False)))
    _set(lines, "pipeline", "onnx_path", settings.get("onnx_path") or "")
    for key, value in (settings.get("onnx_options") or {}).items():
        _set(lines, "pipeline", f"onnx_{key}", value)
    for section, key in (("search", "threshold"), ("enrollment", "duplicate_threshold")):
        at = _setting(lines, section, key)
        if at is not None:
            lines[at] = f"# {lines[at].strip()}  # {why or 'a score of another model'}"
    if threshold is not None:
        _set(lines, "search", "threshold", float(threshold))
    return "\n".join(lines) + "\n"


def with_keys_source(toml: str, kind: str, value: str) -> str:
    """``toml`` with ``[keys]`` naming one source (``kind``: file, env or command), in place
    of any it named."""
    if kind not in ("file", "env", "command"):
        raise ValueError(f"unknown key source {kind!r}")
    line = f"{kind} = " + '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out: list[str] = []
    section = None
    for raw in toml.splitlines():
        stripped = raw.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[keys]" and stripped.split("=")[0].strip() in ("file", "env", "command"):
            continue  # the source it replaces
        out.append(raw)
        if stripped == "[keys]":
            out.append(line)
    if "[keys]" not in (x.strip() for x in out):
        out += ["", "[keys]", line]
    return "\n".join(out) + "\n"


def _rate(value: Any, name: str) -> float:
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"[search] {name} must lie strictly between 0 and 1, got {v}")
    return v


@dataclass(frozen=True)
class ReceiptText:
    """What the receipt handed to the person photographed says about redress (``[receipt]``).

    The defaults are deliberately generic; an agency states its own office and address."""

    agency: str = "The agency that carried out this check"
    redress: str = (
        "You may ask what was done with your photo and have a mistake corrected. Write to the "
        "agency's data-protection office, quoting the receipt code above. The photo taken is "
        "deleted within the period shown; the record that a search was made is kept for the "
        "periods shown, so that it can be checked."
    )
    contact: str = "the data-protection office of the agency that ran the search"
    #: The address the QR code opens, ``{code}`` replaced by the receipt code; "" for the code.
    redress_url: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReceiptText:
        unknown = set(d) - {"agency", "redress", "contact", "redress_url"}
        if unknown:
            raise ValueError(f"[receipt] has unknown settings: {', '.join(sorted(unknown))}")
        out = cls(**{k: str(v).strip() for k, v in d.items()})
        if out.redress_url and not out.redress_url.startswith(("https://", "http://")):
            raise ValueError("[receipt] redress_url must be an http(s) address or empty")
        return out

    def qr_payload(self, code: str) -> str:
        """What the receipt's QR code encodes: the redress address for this code, or the code."""
        if self.redress_url:
            return self.redress_url.replace("{code}", code)
        return code


@dataclass(frozen=True)
class WorkspaceConfig:
    purposes: tuple[str, ...] = ("field-identification", "evaluation")
    pipeline: PipelineSpec = field(default_factory=PipelineSpec)
    top_k: int = 10
    threshold: float | None = None
    target_fpir: float = DEFAULT_TARGET_FPIR
    verify_target_fmr: float = DEFAULT_VERIFY_TARGET_FMR
    exact_below: int = 50_000
    gate: QualityGate = field(default_factory=QualityGate)
    enroll_min_inter_eye_px: float = 16.0
    duplicate_threshold: float | None = None
    limits: IntakeLimits = field(default_factory=IntakeLimits)
    #: ``[use] notice_required``: a search needs the officer's "notice given".
    notice_required: bool = True
    receipt: ReceiptText = field(default_factory=ReceiptText)
    #: ``[index]``: the vector-index backend and its parameters (fieldid.index.config).
    index: IndexConfig = field(default_factory=IndexConfig)
    #: ``[database] url`` (None: the workspace's SQLite file; see ``fieldid.store.engine``).
    database_url: str | None = None
    #: ``[keys]``: where the key-encryption key comes from (``fieldid.keys.sources``).
    keys: KeysSpec = field(default_factory=KeysSpec)

    def search_threshold(self, model_id: str) -> float:
        """The configured fixed threshold. Without one the threshold depends on the gallery size
        and is computed per search: use ``fieldid.calibration.threshold_in_force``."""
        if self.threshold is not None:
            return self.threshold
        raise WorkspaceError(
            f"no fixed search threshold is configured for model {model_id}: the threshold is "
            f"computed for each search from [search] target_fpir = {self.target_fpir} and the "
            "gallery size (fieldid.calibration.threshold_in_force)",
            code="config.threshold",
        )

    def duplicate_threshold_for(self, model_id: str) -> float | None:
        """The enrollment dedupe threshold in force, or None when none is known (dedupe off)."""
        if self.duplicate_threshold is not None:
            return self.duplicate_threshold
        return DEFAULT_DUPLICATE_THRESHOLDS.get(model_id)

    @classmethod
    def from_toml(cls, text: str, origin: str = CONFIG_NAME) -> WorkspaceConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise WorkspaceError(f"{origin} is not valid TOML: {e}", code="config.syntax") from e
        try:
            return cls._from_dict(data)
        except (TypeError, ValueError, KeyError) as e:
            raise WorkspaceError(f"{origin}: {e}", code="config.invalid") from e

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> WorkspaceConfig:
        use = d.get("use", {})
        p = d.get("pipeline", {})
        onnx_opts = {
            k.removeprefix("onnx_"): v
            for k, v in p.items()
            if k.startswith("onnx_") and k != "onnx_path"
        }
        spec = PipelineSpec(
            detector=str(p.get("detector", "dlib-hog")),
            detector_model=str(p.get("detector_model", "")) or None,
            fallback_detector=str(p.get("fallback_detector", "dlib-mmod")) or None,
            fallback_upsample_schedule=tuple(
                int(x) for x in p.get("fallback_upsample_schedule", (0,))
            ),
            detect_max_side=int(p.get("detect_max_side", 320)),
            upsample_schedule=tuple(int(x) for x in p.get("upsample_schedule", (0, 1, 2))),
            # A workspace that names no embedder predates MobileFace v2: it keeps dlib.
            embedder=str(p.get("embedder", LEGACY_EMBEDDER)),
            flip=bool(p.get("flip", False)),
            onnx_path=str(p.get("onnx_path", "")) or None,
            onnx_options=onnx_opts,
            budget=_budget(p),
        )
        search = d.get("search", {})
        threshold = search.get("threshold")
        purposes = tuple(str(x) for x in use.get("purposes", cls.purposes))
        if not purposes:
            raise ValueError("[use] purposes must list at least one purpose")
        intake = d.get("intake", {})
        index = IndexConfig.from_dict(d.get("index", {}))
        notice_required = use.get("notice_required", True)
        if not isinstance(notice_required, bool):
            raise ValueError("[use] notice_required must be true or false")
        return cls(
            notice_required=notice_required,
            receipt=ReceiptText.from_dict(d.get("receipt", {})),
            purposes=purposes,
            pipeline=spec,
            top_k=int(search.get("top_k", 10)),
            threshold=None if threshold is None else float(threshold),
            target_fpir=_rate(search.get("target_fpir", DEFAULT_TARGET_FPIR), "target_fpir"),
            verify_target_fmr=_rate(
                search.get("verify_target_fmr", DEFAULT_VERIFY_TARGET_FMR), "verify_target_fmr"
            ),
            exact_below=index.exact_below,
            index=index,
            gate=QualityGate.from_dict(d.get("quality_gate", {})),
            enroll_min_inter_eye_px=float(d.get("enrollment", {}).get("min_inter_eye_px", 16.0)),
            duplicate_threshold=(
                None
                if d.get("enrollment", {}).get("duplicate_threshold") is None
                else float(d["enrollment"]["duplicate_threshold"])
            ),
            limits=IntakeLimits(**intake),
            database_url=str(d.get("database", {}).get("url", "")).strip() or None,
            keys=KeysSpec.from_dict(d.get("keys", {})),
        )

    @classmethod
    def load(cls, path: Path) -> WorkspaceConfig:
        return cls.from_toml(path.read_text(encoding="utf-8"), str(path))
