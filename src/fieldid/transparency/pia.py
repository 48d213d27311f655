"""The privacy impact assessment (PIA), written from the live workspace, versioned and signed.

``fieldid pia`` writes a new *version*: ``W/pia/NNNN.json`` (the version of record), signed like
an audit export (``NNNN.json.sig``, Ed25519 with the workspace's export key, public key in
``NNNN.json.pub.pem``), and optionally a rendering (``--out pia.md`` or ``pia.html``, signed the
same way). A version holds:

- the factual sections (:mod:`.pia_facts`), read from the configuration, the database and the
  latest evaluation at that moment;
- ``changes``: what changed since the previous version: each configuration change the audit log
  recorded after the previous version (``config_change`` entries, written on every workspace open
  that finds ``fieldid.toml`` changed, and on source registration), setting by setting; the net
  difference between the two configurations; and every fact that differs;
- ``agency``: the sections only people can write (necessity, proportionality, alternatives
  considered), marked as the agency's, and carried forward from the previous version unless new
  text is given;
- ``previous``: the previous version's number and SHA-256, so the versions form a chain that
  :func:`verify_versions` checks;
- ``config``: the ``fieldid.toml`` in force (text and SHA-256), so the next version can compare
  even after the audit entries in between were purged under retention.

Where the agency writes its sections: ``W/pia/agency.md``, between the markers
``<!-- fieldid:agency ID -->`` and ``<!-- fieldid:agency end -->``. fieldid creates the file on the
first run (with the text in force) and never overwrites it; each run reads it. ``--agency FILE``
reads the sections from another file instead: a rendered ``pia.md`` edited in place (it carries
the same markers), or a JSON file (a stored version edited, or ``{"agency": {"necessity": "…"}}``).
A section left empty keeps the previous version's text. Every version records which version each
text was last changed in.

Generating a version is audited (event ``pia``: version, SHA-256, key id, role).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldid.access import Actor, require
from fieldid.audit.log import AuditRecord
from fieldid.config import CONFIG_NAME
from fieldid.errors import FieldidError
from fieldid.transparency.pia_facts import collect, toml_inline
from fieldid.transparency.signing import SignatureCheck, sign_file, verify_file
from fieldid.workspace import Workspace

PIA_DIR = "pia"
AGENCY_FILE = "agency.md"
FORMAT = 1
KIND = "fieldid-privacy-impact-assessment"

#: (id, title, what the agency is asked to write).
AGENCY_SECTIONS = (
    (
        "necessity",
        "Necessity",
        "Why the agency needs face search for the purposes above: the problem it addresses, "
        "and what the agency would do without it.",
    ),
    (
        "proportionality",
        "Proportionality",
        "Why the intrusion on the people photographed, and on the people in the galleries, is "
        "justified by the aim; the limits the agency puts on use beyond those enforced above.",
    ),
    (
        "alternatives",
        "Alternatives considered",
        "Other ways the agency considered (document checks only, 1:1 comparison only, no "
        "system) and why they were not chosen.",
    ),
)
AGENCY_IDS = tuple(a[0] for a in AGENCY_SECTIONS)
_MARK = re.compile(
    r"<!-- fieldid:agency ([a-z_]+) -->[ \t]*\n?(.*?)<!-- fieldid:agency end -->", re.DOTALL
)


class PiaError(FieldidError):
    """An assessment could not be written, read or verified. Codes ``pia.*``."""

    code = "pia.invalid"


def pia_dir(root: Path) -> Path:
    return root / PIA_DIR


def version_path(root: Path, version: int) -> Path:
    return pia_dir(root) / f"{version:04d}.json"


def versions(root: Path) -> list[Path]:
    """The stored versions, oldest first."""
    d = pia_dir(root)
    return sorted(p for p in d.glob("[0-9][0-9][0-9][0-9].json") if p.is_file())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_version(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PiaError(f"cannot read {path}: {e}", code="pia.unreadable") from e
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise PiaError(f"{path} is not a fieldid assessment", code="pia.unreadable")
    return doc


# -- the agency's sections -----------------------------------------------------------------------


def parse_agency_markdown(text: str) -> dict[str, str]:
    """The text between each ``<!-- fieldid:agency ID -->`` and ``<!-- fieldid:agency end -->``."""
    out = {}
    for m in _MARK.finditer(text):
        if m.group(1) in AGENCY_IDS:
            out[m.group(1)] = m.group(2).strip()
    return out


def read_agency_file(path: Path) -> dict[str, str]:
    """Agency sections from a markdown file with markers, or a JSON file (see the module doc)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PiaError(f"cannot read {path}: {e}", code="pia.agency_unreadable") from e
    if path.suffix.lower() != ".json":
        found = parse_agency_markdown(text)
        if not found:
            raise PiaError(
                f"{path} holds no agency section: write each between "
                "'<!-- fieldid:agency ID -->' and '<!-- fieldid:agency end -->' "
                f"(ID: {', '.join(AGENCY_IDS)})",
                code="pia.agency_unreadable",
            )
        return found
    try:
        data = json.loads(text)
        sections = data.get("agency", data)
        out = {}
        for sid in AGENCY_IDS:
            v = sections.get(sid)
            if isinstance(v, dict):
                v = v.get("text")
            if v is not None and not isinstance(v, str):
                raise ValueError(f"{sid} must be text")
            out[sid] = (v or "").strip()
    except (ValueError, AttributeError) as e:
        raise PiaError(
            f'{path}: expected {{"agency": {{"necessity": "...", ...}}}} ({e})',
            code="pia.agency_unreadable",
        ) from e
    return out


def agency_markdown(agency: dict[str, dict[str, Any]]) -> str:
    """``W/pia/agency.md``: the agency's standing draft, with the text now in force."""
    parts = [
        "# Privacy impact assessment: the agency's sections",
        "",
        "fieldid writes the factual sections of the assessment from the live system. These "
        "sections need human judgement: write each between its two markers (keep the markers). "
        "`fieldid pia` reads this file every time it writes a version; a section left empty keeps "
        "the previous version's text. fieldid created this file and never overwrites it.",
    ]
    for sid, title, guide in AGENCY_SECTIONS:
        text = agency.get(sid, {}).get("text") or ""
        parts += [
            "",
            f"## {title}",
            "",
            f"_{guide}_",
            "",
            f"<!-- fieldid:agency {sid} -->",
            text,
            "<!-- fieldid:agency end -->",
        ]
    return "\n".join(parts) + "\n"


def _agency(
    given: dict[str, str], previous: dict[str, Any] | None, version: int
) -> dict[str, dict[str, Any]]:
    prev = (previous or {}).get("agency") or {}
    out = {}
    for sid, title, guide in AGENCY_SECTIONS:
        old = prev.get(sid) or {}
        text = (given.get(sid) or "").strip()
        if text and text != old.get("text"):
            state = {"text": text, "written_in_version": version}
        elif old.get("text"):
            state = {"text": old["text"], "written_in_version": old.get("written_in_version")}
        else:
            state = {"text": None, "written_in_version": None}
        out[sid] = {"title": title, "for": "the agency to write", "guidance": guide, **state}
    return out


# -- what changed --------------------------------------------------------------------------------


def _flat_toml(text: str) -> dict[str, Any]:
    def walk(prefix: str, d: dict[str, Any], out: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v, out)
            else:
                out[prefix + k] = v

    out: dict[str, Any] = {}
    walk("", tomllib.loads(text), out)
    return out


def _setting(key: str) -> str:
    section, _, name = key.rpartition(".")
    return f"[{section}] {name}" if section else name


def config_diff(old: str, new: str) -> list[dict[str, Any]]:
    """Setting by setting: what differs between two ``fieldid.toml`` texts."""
    try:
        a, b = _flat_toml(old), _flat_toml(new)
    except tomllib.TOMLDecodeError as e:
        return [{"setting": "(the file)", "before": None, "after": f"not valid TOML: {e}"}]
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) or (key in a) != (key in b):
            out.append(
                {
                    "setting": _setting(key),
                    "before": None if key not in a else toml_inline(a[key]),
                    "after": None if key not in b else toml_inline(b[key]),
                }
            )
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            if k == "now":
                continue
            out.update(_flat(v, f"{prefix}{k}." if prefix or k else ""))
        return out
    return {prefix.rstrip("."): d}


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fact (section ``data``, apart from ``now``) that differs between two versions."""
    before = {s["id"]: s for s in old}
    out = []
    for s in new:
        a = _flat(before.get(s["id"], {}).get("data", {}))
        b = _flat(s["data"])
        for key in sorted(set(a) | set(b)):
            if a.get(key, "∅") != b.get(key, "∅"):
                out.append(
                    {
                        "section": s["title"],
                        "fact": key,
                        "before": json.dumps(a[key], ensure_ascii=False) if key in a else None,
                        "after": json.dumps(b[key], ensure_ascii=False) if key in b else None,
                    }
                )
    return out


def config_history(entries: list[AuditRecord], after_seq: int, text: str) -> list[dict[str, Any]]:
    """The configuration changes the audit log recorded after ``after_seq``, each compared with
    the configuration before it (``text`` is the one in force at ``after_seq``)."""
    out = []
    for e in entries:
        if e.event != "config_change" or e.seq <= after_seq:
            continue
        p = e.payload
        item: dict[str, Any] = {"at": e.at.isoformat(timespec="seconds"), "audit_seq": e.seq}
        if isinstance(p.get("config"), str):
            item["what"] = f"{p.get('file', CONFIG_NAME)} changed" + (
                " (found changed when the workspace was opened)" if p.get("observed") else ""
            )
            item["changes"] = config_diff(text, p["config"])
            text = p["config"]
        elif p.get("change") == "source_add":
            src = p.get("source") or {}
            item["what"] = (
                f"record source added: {src.get('name')} ({src.get('kind')}; authority "
                f"{src.get('authority')}; refresh {src.get('refresh')})"
            )
            item["changes"] = []
        else:
            item["what"] = f"configuration change: {p.get('change', 'unspecified')}"
            item["changes"] = []
        out.append(item)
    return out


def changes_since(
    previous: dict[str, Any] | None,
    sections: list[dict[str, Any]],
    config_text: str,
    entries: list[AuditRecord],
) -> dict[str, Any]:
    if previous is None:
        return {"previous_version": None, "statement": "This is the first assessment."}
    after = int(previous["audit_head"]["seq"] or 0)
    first_held = entries[0].seq if entries else None
    gap = first_held is not None and first_held > after + 1
    history = config_history(entries, after, previous["config"]["text"])
    return {
        "previous_version": previous["version"],
        "previous_generated_at": previous["generated_at"],
        "statement": (
            f"Changes since version {previous['version']} ({previous['generated_at']}): "
            f"{len(history)} configuration change(s) recorded in the audit log."
        ),
        "audit_log_incomplete": (
            f"The audit log now starts at entry {first_held}; entries after the previous version "
            f"({after}) and before it were purged under retention, so the history below may be "
            "incomplete. The net difference in configuration is complete."
            if gap
            else None
        ),
        "configuration_history": history,
        "configuration_net": config_diff(previous["config"]["text"], config_text),
        "facts": compare(previous["sections"], sections),
    }


# -- writing and checking versions --------------------------------------------------------------


@dataclass(frozen=True)
class PiaResult:
    version: int
    path: Path
    doc: dict[str, Any]
    signature: dict[str, Any]
    audit_seq: int
    out: Path | None = None
    agency_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "sha256": self.signature["sha256"],
            "key_id": self.signature["key_id"],
            "audit_seq": self.audit_seq,
            "out": None if self.out is None else str(self.out),
            "agency_file": None if self.agency_file is None else str(self.agency_file),
        }


def _workspace_public_key(root: Path) -> Any:
    from fieldid.audit.export import workspace_public_key

    return workspace_public_key(root)


def generate(
    ws: Workspace,
    actor: Actor,
    *,
    out: Path | None = None,
    agency: Path | None = None,
    key: Path | None = None,
) -> PiaResult:
    """Write the next version (and ``out``, rendered by its suffix: .md or .html); audited."""
    from fieldid.audit.export import load_or_create_key
    from fieldid.retention.purge import register_export
    from fieldid.transparency.pia_render import render

    require(actor, "pia")
    if out is not None and out.suffix.lower() not in (".md", ".html", ".htm"):
        raise PiaError(
            f"{out.name}: write the assessment to a .md or .html file", code="pia.bad_output"
        )
    root = ws.root
    private, _ = load_or_create_key(ws.store, key, root=root)
    stored = versions(root)
    previous = None
    if stored:
        check = verify_version(root, stored[-1], private.public_key())
        if not check.ok:
            raise PiaError(
                f"the latest stored assessment {stored[-1].name} does not verify "
                f"({check.message}); nothing is carried forward from it. Move it aside after "
                "looking into it.",
                code="pia.previous_invalid",
            )
        previous = load_version(stored[-1])
    version = (int(stored[-1].stem) if stored else 0) + 1
    agency_path = pia_dir(root) / AGENCY_FILE
    given: dict[str, str] = {}
    if agency is not None:
        given = read_agency_file(agency)
    elif agency_path.is_file():
        given = parse_agency_markdown(agency_path.read_text(encoding="utf-8"))

    entries = list(ws.store.audit_entries())
    head = entries[-1] if entries else None
    config_text = (root / CONFIG_NAME).read_text(encoding="utf-8")
    sections = collect(ws)
    now = ws.clock.now().isoformat(timespec="seconds")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kind": KIND,
        "title": "Privacy impact assessment",
        "version": version,
        "generated_at": now,
        "previous": None
        if previous is None
        else {
            "version": previous["version"],
            "sha256": _sha(stored[-1]),
            "generated_at": previous["generated_at"],
        },
        "audit_head": {
            "seq": None if head is None else head.seq,
            "hash": None if head is None else head.hash,
        },
        "config": {
            "file": CONFIG_NAME,
            "sha256": hashlib.sha256(config_text.encode()).hexdigest(),
            "text": config_text,
        },
        "sections": sections,
        "changes": changes_since(previous, sections, config_text, entries),
        "agency": _agency(given, previous, version),
    }
    path = version_path(root, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    except FileExistsError as e:
        raise PiaError(
            f"version {version} was written by someone else meanwhile; run again",
            code="pia.concurrent",
        ) from e
    sig = sign_file(path, private, kind="pia", signed_at=now)
    written_agency = None
    if not agency_path.exists():
        agency_path.write_text(agency_markdown(doc["agency"]), encoding="utf-8")
        written_agency = agency_path
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            render(doc, "html" if out.suffix.lower() in (".html", ".htm") else "md"),
            encoding="utf-8",
        )
        sign_file(out, private, kind="pia-rendering", signed_at=now)
    with ws.store.unit_of_work() as uow:  # the entry and the export's registration together
        entry = uow.audit(
            "pia",
            operator=actor.name,
            payload={
                "role": actor.role.value,
                "version": version,
                "path": str(path),
                "sha256": sig["sha256"],
                "key_id": sig["key_id"],
                "previous": None if previous is None else previous["version"],
                "out": None if out is None else str(out),
            },
        )
        if out is not None:
            register_export(uow, "pia", out, entry.seq)
    return PiaResult(version, path, doc, sig, entry.seq, out, written_agency)


def verify_version(root: Path, path: Path, public_key: Any = None) -> SignatureCheck:
    """A stored version: its signature and content, its number, and its link to the one before."""
    key = public_key if public_key is not None else _workspace_public_key(root)
    check = verify_file(path, key)
    if not check.ok:
        return check
    try:
        doc = load_version(path)
    except PiaError as e:
        return SignatureCheck(False, e.message, str(path), check.key_id, check.sha256, check.kind)
    n = int(path.stem)
    if doc.get("version") != n:
        return SignatureCheck(
            False,
            f"the file is named version {n} but holds version {doc.get('version')}",
            str(path),
            check.key_id,
            check.sha256,
            check.kind,
        )
    prev = doc.get("previous")
    if n > 1:
        before = version_path(root, n - 1)
        if not before.is_file():
            msg = f"version {n - 1}, which version {n} follows, is missing"
            return SignatureCheck(False, msg, str(path), check.key_id, check.sha256, check.kind)
        if not prev or prev.get("sha256") != _sha(before):
            msg = f"version {n - 1} is not the one version {n} was written after (it changed)"
            return SignatureCheck(False, msg, str(path), check.key_id, check.sha256, check.kind)
    return SignatureCheck(
        True,
        f"version {n}: {check.message}" + (f"; follows version {n - 1}" if n > 1 else ""),
        str(path),
        check.key_id,
        check.sha256,
        check.kind,
    )


def verify_versions(
    root: Path, version: int | None = None, public_key: Any = None
) -> list[SignatureCheck]:
    """Check one stored version, or all of them (oldest first)."""
    if version is not None:
        path = version_path(root, version)
        if not path.is_file():
            raise PiaError(
                f"no assessment version {version} in {pia_dir(root)}", code="pia.not_found"
            )
        return [verify_version(root, path, public_key)]
    stored = versions(root)
    if not stored:
        raise PiaError(f"no assessment is stored in {pia_dir(root)}", code="pia.not_found")
    return [verify_version(root, p, public_key) for p in stored]
