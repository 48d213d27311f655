"""Biometric data at rest: sealed under per-record data keys wrapped by a key-encryption key kept
outside the workspace (issue 15 item 3), and a workspace no other user can read (item 4).

The test the issue's "Done means" names is
``test_a_workspace_copied_without_its_key_yields_no_face_template_or_document_number``: every
file of a copied workspace (the database, its WAL, the index, everything) is scanned for image
signatures, for known templates' float32 bytes and near copies of any 16-byte window of them,
for known document numbers and for the keys themselves; on PostgreSQL, every row's bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from conftest import KEY_DIR, make_workspace, subject_images
from fieldid.access import Actor, Role
from fieldid.audit import Attribution
from fieldid.audit.export import (
    SIGNING_KEY,
    key_id,
    load_or_create_key,
    load_public_key,
    read_export,
    verify_export,
    workspace_public_key,
    write_export,
)
from fieldid.audit.ops import export_audit
from fieldid.audit.verify import read_rows
from fieldid.cli.app import app
from fieldid.gallery.pixels import decode_pixels
from fieldid.index.faiss_local import FaissLocalIndex
from fieldid.keys import CommandKek, EnvKek, FileKek, Keyring, KeysError, KeysSpec, fingerprint
from fieldid.keys.envelope import HEADER, wrapped_by
from fieldid.keys.files import SEGMENT, SealedReader, read_sealed, rewrap_file, write_sealed
from fieldid.keys.kek import encode_key, new_key
from fieldid.keys.sources import resolve
from fieldid.records.documents import PresentedDocument
from fieldid.records.kinds import LEGACY_KEY_FILE
from fieldid.store import keys as store_keys
from fieldid.store.keys import (
    ENROLLMENT_PIXELS,
    PROBE_IMAGE,
    PROBE_TEMPLATE,
    SEALED,
    TEMPLATE_VECTOR,
    THUMBNAIL,
    facts,
)
from fieldid.store.schema import (
    EnrollmentImage,
    EnrollmentPixels,
    KeyringEntry,
    ProbeRecord,
    TemplateRow,
)
from fieldid.workspace import INDEX_DIR, Workspace
from helpers_cli import cli, tokens
from helpers_records import register, write_csv
from helpers_storage import Backend, add_template_people, behind_the_back

runner = CliRunner()
ATTR = Attribution("officer-7", "field-identification", "CASE-2026-001")
#: A document number given in records and presented at a search: it must never be readable.
NUMBER = "XQ 7731-9902"
NUMBER_FORMS = [b"XQ 7731-9902", b"XQ77319902", b"77319902", b"xq77319902", b"7731-9902"]


# -- the envelope ---------------------------------------------------------------------------------


def test_a_sealed_record_opens_only_with_its_key_and_where_it_belongs() -> None:
    kek = new_key()
    ring = Keyring(kek)
    data = np.linspace(-0.2, 0.2, 256, dtype="<f4").tobytes()
    blob = ring.seal(data, b"templates.vector:7")
    assert blob[:4] == b"FIDE" and data not in blob and len(blob) == len(data) + 101
    assert ring.open(blob, b"templates.vector:7") == data
    assert wrapped_by(blob) == ring.kek_id == fingerprint(kek)
    assert ring.seal(data, b"templates.vector:7") != blob  # a new data key every time

    def code(b: bytes, aad: bytes = b"templates.vector:7", r: Keyring = ring) -> str:
        with pytest.raises(KeysError) as e:
            r.open(b, aad)
        return e.value.code

    assert code(blob, b"templates.vector:8") == "keys.tampered"  # moved to another row
    assert code(blob, b"probes.template:7") == "keys.tampered"  # or another column
    for at in (20, 80, HEADER + 3, len(blob) - 1):  # wrapped key, nonce, data, tag
        bad = bytearray(blob)
        bad[at] ^= 1
        assert code(bytes(bad)) == "keys.tampered"
    assert code(blob, r=Keyring(new_key())) == "keys.unknown_kek"
    assert code(data) == "keys.not_sealed"


def test_rotation_rewraps_the_data_key_and_keeps_the_data_bytes() -> None:
    old, new = new_key(), new_key()
    blob = Keyring(old).seal(b"face" * 100, b"probes.image:3")
    both = Keyring(old).with_current(new)
    moved = both.rewrap(blob, b"probes.image:3")
    assert moved[73:] == blob[73:]  # nonce, ciphertext and tag: not encrypted again
    assert wrapped_by(moved) == fingerprint(new) and both.rewrap(moved, b"probes.image:3") == moved
    assert Keyring(new).open(moved, b"probes.image:3") == b"face" * 100
    with pytest.raises(KeysError) as e:
        Keyring(old).open(moved, b"probes.image:3")
    assert e.value.code == "keys.unknown_kek"


@pytest.mark.parametrize("size", [0, 1000, SEGMENT, 2 * SEGMENT + 5])
def test_sealed_files_stream_and_refuse_cut_reordered_or_altered_content(
    tmp_path: Path, size: int
) -> None:
    ring = Keyring(new_key())
    data = os.urandom(size)
    path = tmp_path / "f"
    write_sealed(path, data, ring, "index/vectors")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    assert read_sealed(path, ring, "index/vectors") == data
    with open(path, "rb") as f:  # read in small pieces
        r = SealedReader(f, ring, "index/vectors")
        assert b"".join(iter(lambda: r.read(777), b"")) == data

    def refused(content: bytes, label: str = "index/vectors") -> bool:
        path.write_bytes(content)
        try:
            read_sealed(path, ring, label)
        except KeysError as e:
            return e.code in ("keys.tampered", "keys.not_sealed")
        return False

    seg = SEGMENT + 16
    assert refused(raw, "index/ids")  # not the file its name says
    assert refused(raw[:-1]) and refused(raw + b"x")
    flipped = bytearray(raw)
    flipped[-5] ^= 1
    assert refused(bytes(flipped))
    if size >= SEGMENT:
        assert refused(raw[: 81 + seg])  # cut at a segment boundary
    if size > 2 * SEGMENT:
        assert refused(
            raw[:81] + raw[81 + seg : 81 + 2 * seg] + raw[81 : 81 + seg] + raw[81 + 2 * seg :]
        )
    path.write_bytes(raw)
    both = ring.with_current(new_key())
    assert rewrap_file(path, both, "index/vectors") and path.read_bytes()[81:] == raw[81:]
    assert read_sealed(path, both, "index/vectors") == data
    with pytest.raises(KeysError) as e:
        read_sealed(path, ring, "index/vectors")  # the old key alone no longer opens it
    assert e.value.code == "keys.unknown_kek"


class FakeKek:
    """The KEK port, faked: a key in memory, counting how often it is asked for."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.loads = 0

    def describe(self) -> str:
        return "a key in memory (test)"

    def load(self) -> bytes:
        self.loads += 1
        return self.key


def test_key_sources_file_env_command_and_what_they_refuse(tmp_path: Path) -> None:
    key = new_key()
    f = FileKek(tmp_path / "k" / "kek.key")
    made = f.create()
    assert f.load() == made
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o700
    os.chmod(f.path, 0o644)
    with pytest.raises(KeysError) as e:
        f.load()
    assert e.value.code == "keys.file_mode" and "chmod 600" in e.value.message
    with pytest.raises(KeysError) as e:
        FileKek(tmp_path / "nothing.key").load()
    assert e.value.code == "keys.missing"
    assert EnvKek("K", {"K": encode_key(key)}).load() == key
    assert EnvKek("K", {"K": key.hex()}).load() == key
    with pytest.raises(KeysError) as e:
        EnvKek("K", {"K": "not a key"}).load()
    assert e.value.code == "keys.bad_material"
    with pytest.raises(KeysError) as e:
        EnvKek("K", {}).load()
    assert e.value.code == "keys.missing"
    printer = [sys.executable, "-c", f"print({encode_key(key)!r})"]
    assert CommandKek(printer).load() == key
    failing = CommandKek([sys.executable, "-c", "import sys; sys.exit('no token')"])
    with pytest.raises(KeysError) as e:
        failing.load()
    assert e.value.code == "keys.command_failed" and "no token" in e.value.message


def test_which_key_a_workspace_uses_and_never_one_inside_it(tmp_path: Path) -> None:
    env = {"FIELDID_KEY_DIR": str(tmp_path / "keys")}
    src, default = resolve(KeysSpec(), "abc", tmp_path / "ws", env)
    assert default and src.describe() == f"file {tmp_path / 'keys' / 'abc.key'}"
    src, default = resolve(KeysSpec(command="kms get fieldid"), "abc", None, env)
    assert not default and isinstance(src, CommandKek) and src.argv == ["kms", "get", "fieldid"]
    src, _ = resolve(KeysSpec(env="AGENCY"), "abc", None, env)
    assert isinstance(src, EnvKek) and src.var == "AGENCY"
    # the environment overrides fieldid.toml
    src, _ = resolve(KeysSpec(file="/etc/x.key"), "abc", None, {**env, "FIELDID_KEK": "…"})
    assert isinstance(src, EnvKek) and src.var == "FIELDID_KEK"
    with pytest.raises(KeysError) as e:
        resolve(KeysSpec(file=str(tmp_path / "ws" / "secrets" / "k.key")), "abc", tmp_path / "ws")
    assert e.value.code == "keys.inside_workspace"
    with pytest.raises(ValueError):
        KeysSpec.from_dict({"file": "a", "env": "B"})


# -- a workspace copied without its key -----------------------------------------------------------

JPEG, PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"
STEP = 256  # near copies: float values equal to within 1/512 (about 0.4 % of a template value)


def _near_keys(vectors: np.ndarray) -> np.ndarray:
    """Keys of every 4-value (16-byte) window of ``vectors`` whose values are all clearly
    non-zero, quantised to 1/256, with the neighbouring bin too where a value sits near an edge
    (so a value that moved a little is still found)."""
    keys: list[int] = []
    for v in vectors.astype(np.float64):
        for w in sliding_window_view(v, 4):
            scaled = w * STEP
            q = np.round(scaled)
            if (np.abs(q) < 4).any():
                continue
            options = [
                sorted({int(x), int(x + np.sign(s - x))} if abs(s - x) > 0.3 else {int(x)})
                for s, x in zip(scaled, q, strict=True)
            ]
            for a in options[0]:
                for b in options[1]:
                    for c in options[2]:
                        for d in options[3]:
                            keys.append(int(np.array([a, b, c, d], dtype="<i2").view("<i8")[0]))
    return np.unique(np.asarray(keys, dtype=np.int64))


def _near_hits(blob: bytes, keys: np.ndarray) -> int:
    hits = 0
    for a in range(4):
        n = (len(blob) - a) // 4
        if n < 4:
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            x = np.frombuffer(blob, dtype="<f4", count=n, offset=a).astype(np.float64)
        ok = np.isfinite(x) & (np.abs(x) <= 1.0)
        q = np.where(ok, np.round(np.where(ok, x, 0) * STEP), 32767).astype("<i2")
        w = np.ascontiguousarray(sliding_window_view(q, 4)).view("<i8").ravel()
        hits += int(np.isin(w, keys).sum())
    return hits


def _has_jpeg(blob: bytes) -> bool:
    """A JPEG start in ``blob``: its signature (SOI and a marker) followed by a well-formed
    first segment (a length that ends on the next marker). The three signature bytes alone
    occur by chance about once in 16 MB of ciphertext; this, about once in 10^10 bytes."""
    at = blob.find(JPEG)
    while at >= 0:
        if at + 6 <= len(blob) and 0xC0 <= blob[at + 3] <= 0xFE:
            end = at + 4 + ((blob[at + 4] << 8) | blob[at + 5])
            if end > at + 5 and end < len(blob) and blob[end] == 0xFF:
                return True
        at = blob.find(JPEG, at + 1)
    return False


def _pixel_samples(raws: list[bytes], per_image: int = 64) -> list[bytes]:
    """32-byte runs of decoded pixels (raw RGB arrays), spread over each image, each varied
    enough (16 distinct byte values at least) never to occur by chance in other data."""
    out: list[bytes] = []
    for raw in raws:
        step = max(32, len(raw) // per_image)
        for at in range(0, len(raw) - step, step):
            for off in range(at, at + step - 32, 32):
                chunk = raw[off : off + 32]
                if len(set(chunk)) >= 16:
                    out.append(chunk)
                    break
    return out


def findings(
    blob: bytes,
    templates: np.ndarray,
    near: np.ndarray,
    images: list[bytes],
    secrets: list[bytes],
    pixels: list[bytes] = [],  # noqa: B006 - read only
) -> list[str]:
    """What in ``blob`` is readable that must not be."""
    out: list[str] = []
    if any(chunk in blob for chunk in pixels):
        out.append("32 bytes of an enrolled image's pixels")
    if _has_jpeg(blob):
        out.append("a JPEG signature")
    if PNG in blob:
        out.append("a PNG signature")
    for n in NUMBER_FORMS:
        if n in blob or n.lower() in blob:
            out.append(f"the document number {n.decode()}")
    for img in images:
        for at in range(2, len(img) - 32, max(1, len(img) // 8)):
            if img[at : at + 32] in blob:
                out.append("32 bytes of a face image")
                break
    for v in templates:
        raw = v.astype("<f4").tobytes()
        if any(raw[i : i + 16] in blob for i in range(0, len(raw) - 15, 4)):
            out.append("16 bytes of a template")
            break
    if _near_hits(blob, near):
        out.append("a near copy of 16 bytes of a template")
    for sec in secrets:
        if sec in blob or encode_key(sec).encode() in blob or sec.hex().encode() in blob:
            out.append("a key")
    return out


def _pg_rows(ws: Workspace) -> bytes:
    """Every value of every row of the workspace's PostgreSQL database, as bytes."""
    parts: list[bytes] = []
    with ws.store.engine.connect() as conn:
        for name in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                for v in row:
                    if isinstance(v, bytes | memoryview):
                        parts.append(bytes(v))
                    elif isinstance(v, dict | list):
                        parts.append(json.dumps(v).encode())
                    elif v is not None:
                        parts.append(str(v).encode())
    return b"\0".join(parts)


def _searched(ws: Workspace, tmp_path: Path) -> None:
    """A workspace holding every biometric class: enrolled faces and crops (the fixture), a
    search's probe photo and template, records and a presented document with a number."""
    register(ws)
    rows = [
        {
            "kind": "identity_document",
            "source_record_id": "D1",
            "subject_id": "B-1",
            "person_external_id": "subject-0002",
            "document_type": "passport",
            "document_number": NUMBER,
            "issuing_country": "ARX",
            "expiry": "2030-05-01",
            "synthetic": "true",
        }
    ]
    report = ws.importer.import_file(
        "border-test", write_csv(tmp_path / "r.csv", rows), operator="t"
    )
    assert report.to_dict()["inserted"] == 1, report.to_dict()
    doc = PresentedDocument(
        "passport", number=NUMBER, issuing_country="ARX", date_of_birth=date(1980, 1, 31)
    )
    result = ws.searches.search(subject_images("subject-0002")[1], ATTR, presented=[doc])
    assert result.candidates


def test_a_workspace_copied_without_its_key_yields_no_face_template_or_document_number(
    backend: Backend, enrolled: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = enrolled
    _searched(ws, tmp_path)
    # What there is to find: the templates, crops, probe photo and template, and the keys.
    ids, templates = ws.gallery.all_vectors()
    with ws.store.read() as s:
        probe = s.scalars(select(ProbeRecord)).one()
        assert probe.image is not None and probe.template is not None
        probe_image = ws.keys.open(PROBE_IMAGE, probe.search_id, probe.image)
        probe_template = np.frombuffer(
            ws.keys.open(PROBE_TEMPLATE, probe.search_id, probe.template), "<f4"
        )
        crops = [
            ws.keys.open(THUMBNAIL, i, t)
            for i, t in s.execute(select(EnrollmentImage.id, EnrollmentImage.thumbnail))
            if t is not None
        ]
        # the enrolled images' pixels kept for re-templating (PNG), and the files enrolled
        kept = [
            ws.keys.open(ENROLLMENT_PIXELS, i, d)
            for i, d in s.execute(select(EnrollmentPixels.image_id, EnrollmentPixels.data))
        ]
        sources = [Path(p) for p in s.scalars(select(EnrollmentImage.source))]
    assert len(ids) == 20 and len(crops) == 20 and probe_image[:3] == JPEG
    assert all(c[:3] == JPEG for c in crops)
    assert all(_has_jpeg(b"xx" + c[:600]) for c in [probe_image, *crops])
    assert len(kept) == 20 and all(k[:8] == PNG for k in kept)
    originals = [p.read_bytes() for p in sources if p.is_file()]
    assert len(originals) == 20 and all(o[:3] == JPEG for o in originals)
    pixels = _pixel_samples([decode_pixels(k).tobytes() for k in kept])
    known = np.vstack([templates, probe_template[None, :]])
    near = _near_keys(known)
    kek = FileKek(Path(KEY_DIR) / f"{ws.keys.workspace_id}.key").load()
    signing = load_or_create_key(ws.store, root=ws.root)[0]  # the audit signing key
    secrets = [kek, ws.document_key(), _raw_private(signing)]
    images = [probe_image, *crops, *kept, *originals]
    # the scan finds all of these when they are there (it can fail)
    plain = b"".join([known.astype("<f4").tobytes(), probe_image, NUMBER.encode(), kek])
    assert len(findings(plain, known, near, images, secrets)) >= 5
    raw = decode_pixels(kept[3]).tobytes()
    middle = len(raw) // 2
    assert len(pixels) > 20 * 32
    assert findings(b"x" + raw[middle - 8000 : middle + 8000], known, near, [], [], pixels) == [
        "32 bytes of an enrolled image's pixels"
    ]
    assert findings(kept[5][8:], known, near, images, []) == ["32 bytes of a face image"]
    jittered = (known[3] + np.float32(3e-4)).astype("<f4").tobytes()
    assert findings(jittered, known, near, [], []) == ["a near copy of 16 bytes of a template"]

    ws.gallery.flush()
    copy = tmp_path / "copy"
    if backend.is_pg:
        rows = _pg_rows(ws)
        assert findings(rows, known, near, images, secrets, pixels) == []
        ws.close()
        backend.copy(ws.root, copy)
    else:  # copied while open: the WAL holds the latest writes
        shutil.copytree(ws.root, copy)
        assert (copy / "fieldid.db-wal").stat().st_size > 0
    files = [p for p in copy.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert any(n.startswith("vectors-") for n in names), names  # the index is there, sealed
    assert not [n for n in names if n.endswith(".key")]
    for p in files:
        assert findings(p.read_bytes(), known, near, images, secrets, pixels) == [], p

    # Without its key the copy does not open; it never gets a new one.
    monkeypatch.setenv("FIELDID_KEY_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(KeysError) as e:
        Workspace.open(copy)
    assert e.value.code == "keys.missing" and ws.keys.kek_id in e.value.message
    assert not (tmp_path / "elsewhere").exists()


def test_every_binary_column_of_the_schema_is_sealed_or_says_why_not() -> None:
    """A new table holding image or template bytes cannot be added in the clear unnoticed: every
    binary column is registered in ``SEALED`` (so seal, rotate and check cover it) or is the
    keyring's own (keys wrapped by the KEK)."""
    from sqlalchemy import LargeBinary

    from fieldid.store.schema import Base

    binary = {
        f"{t.name}.{c.name}"
        for t in Base.metadata.tables.values()
        for c in t.columns
        if isinstance(c.type, LargeBinary)
    }
    assert binary == {c.label for c in SEALED} | {"keyring.wrapped"}


def test_audit_payloads_hold_no_image_template_or_document_number(
    enrolled: Workspace, tmp_path: Path
) -> None:
    """The audit log stays readable without the key (an auditor verifies it); what it records
    of a use holds no biometric data: no image, no template, no document number."""
    ws = enrolled
    _searched(ws, tmp_path)
    ws.searches.verify(*subject_images("subject-0001")[:2], ATTR)
    _ids, templates = ws.gallery.all_vectors()
    near = _near_keys(templates)
    for entry in ws.store.audit_entries():
        body = json.dumps(entry.payload).encode()
        floats = [x for x in _numbers(entry.payload) if isinstance(x, float)]
        assert len(floats) < 64, entry.event  # no vector of floats
        assert findings(body, templates, near, [], []) == [], entry.event
        assert b"/9j/" not in body and b"iVBORw0KGgo" not in body  # no base64 JPEG or PNG


def _numbers(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [n for v in x.values() for n in _numbers(v)]
    if isinstance(x, list):
        return [n for v in x for n in _numbers(v)]
    return [x]


# -- rotation and check ---------------------------------------------------------------------------


def _sealed_values(ws: Workspace) -> dict[tuple[str, Any], bytes]:
    out: dict[tuple[str, Any], bytes] = {}
    with ws.store.engine.connect() as conn:
        for col in SEALED:
            pk, c = col.columns()
            for k, v in conn.execute(select(pk, c).where(c.is_not(None))):
                out[(col.label, k)] = bytes(v)
    return out


def test_rotate_rewraps_every_data_key_then_check_proves_every_record_opens(
    backend: Backend, enrolled: Workspace, tmp_path: Path
) -> None:
    ws = enrolled
    ws.searches.search(subject_images("subject-0003")[1], ATTR)
    root, old_id = ws.root, ws.keys.kek_id
    before = _sealed_values(ws)
    signing = load_or_create_key(ws.store)[0].public_key()  # the audit signing key, made now
    ws.close()
    token = tokens(root)
    admin = token[Role.ADMIN]
    new_file = tmp_path / "agency" / "new.key"
    code = cli(["keys", "new-key", "--out", str(new_file)])  # needs no account
    assert code.exit_code == 0, code.output
    res = cli(["keys", "rotate", "-w", root, "--to-file", new_file, "--json"], token=admin)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{") :])
    new_id = fingerprint(FileKek(new_file).load())
    assert (out["from"], out["to"]) == (old_id, new_id)
    rewrapped = out["galleries"]["workspace"]["rewrapped"]
    assert rewrapped["templates.vector"] == 20 and rewrapped["probes.image"] == 1
    assert f'file = "{new_file}"' in (root / "fieldid.toml").read_text()

    ws = Workspace.open(root)
    after = _sealed_values(ws)
    assert after.keys() == before.keys()
    for k, blob in after.items():
        assert blob[73:] == before[k][73:]  # the data was not encrypted again
        assert wrapped_by(blob) == new_id != wrapped_by(before[k])
    assert ws.keys.kek_id == new_id and facts(ws.store)["kek_id"] == new_id  # type: ignore[index]
    assert ws.gallery.index().count() == 20 and ws.gallery.index_source == "disk"
    assert ws.searches.search(subject_images("subject-0004")[1], ATTR).candidates
    assert [e.payload["to"] for e in ws.store.audit_entries("keys.rotate")] == [new_id]
    assert [e.payload["named_keys"] for e in ws.store.audit_entries("keys.rotate")] == [2]
    # the signing key was re-wrapped with the record-hash key: the same key, under the new KEK
    assert key_id(load_or_create_key(ws.store)[0].public_key()) == key_id(signing)
    with ws.store.read() as s:
        assert s.get(KeyringEntry, SIGNING_KEY).kek_id == new_id  # type: ignore[union-attr]
    ws.close()

    res = cli(["keys", "check", "-w", root, "--json"], token=admin)
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{") :])
    checked = report["workspace"]["checked"]
    assert checked["templates.vector"] == 20 and checked["enrollment_images.thumbnail"] == 20
    assert checked["probes.image"] == 2 and checked["keyring"] == 2  # record-hash, signing
    assert report["workspace"]["index_on_disk"] == "opens" and report["ok"]
    # The old key opens nothing any more.
    old = Keyring(FileKek(Path(KEY_DIR) / f"{ws.keys.workspace_id}.key").load())
    (label, k), blob = next(iter(after.items()))
    with pytest.raises(KeysError) as e:
        old.open(blob, f"{label}:{k}".encode())
    assert e.value.code == "keys.unknown_kek"
    # only an administrator's account rotates or checks; without one, nothing is asked or done
    res = cli(["keys", "rotate", "-w", root], token=token[Role.SUPERVISOR])
    assert res.exit_code == 2 and "access.forbidden" in res.output
    res = cli(["keys", "check", "-w", root])
    assert res.exit_code == 2 and "access.unauthenticated" in res.output


def test_an_interrupted_rotation_resumes_and_nothing_is_lost(
    backend: Backend, enrolled: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = enrolled
    root = ws.root
    vectors = ws.gallery.all_vectors()[1]
    new = FileKek(tmp_path / "next.key")
    new.create()
    monkeypatch.setattr(store_keys, "BATCH", 5)
    store_keys.begin_rotation(ws.keys, new.load(), new)

    def stop_after_two_batches(label: str, done: int, total: int) -> None:
        if label == TEMPLATE_VECTOR.label and done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store_keys.rotate(ws.keys, stop_after_two_batches)
    ws.close()
    ws = Workspace.open(root)  # opens with both keys: the configured one and the rotation's
    known = facts(ws.store)
    assert known is not None and known["rotation"]["kek_id"] == fingerprint(new.load())
    wrapped = {
        wrapped_by(v)
        for (label, _k), v in _sealed_values(ws).items()
        if label == "templates.vector"
    }
    assert wrapped == {fingerprint(new.load()), known["kek_id"]}
    ws.gallery.rebuild_index()  # every template still opens
    assert np.array_equal(ws.gallery.all_vectors()[1], vectors)
    ws.close()
    res = cli(["keys", "rotate", "-w", root, "--resume", "--json"], token=tokens(root)[Role.ADMIN])
    assert res.exit_code == 0, res.output
    ws = Workspace.open(root)
    assert ws.keys.kek_id == fingerprint(new.load()) and not facts(ws.store).get("rotation")  # type: ignore[union-attr]
    assert {wrapped_by(v) for v in _sealed_values(ws).values()} == {ws.keys.kek_id}
    assert np.array_equal(ws.gallery.all_vectors()[1], vectors)
    ws.close()


def test_check_finds_a_value_altered_or_moved_to_another_row(
    backend: Backend, enrolled: Workspace
) -> None:
    ws = enrolled
    with behind_the_back(ws) as s:
        rows = s.execute(select(TemplateRow.id, TemplateRow.vector).order_by(TemplateRow.id)).all()
        (a, va), (b, vb), (c, vc) = rows[0], rows[1], rows[2]
        s.execute(TemplateRow.__table__.update().where(TemplateRow.id == a).values(vector=vb))
        s.execute(TemplateRow.__table__.update().where(TemplateRow.id == b).values(vector=va))
        bad = bytearray(vc)
        bad[-20] ^= 0x40
        s.execute(
            TemplateRow.__table__.update().where(TemplateRow.id == c).values(vector=bytes(bad))
        )
    report = store_keys.check(ws.keys)
    assert report.failed == 3 and not report.ok
    assert {(col, key) for col, key, _ in report.failures} == {
        ("templates.vector", a),
        ("templates.vector", b),
        ("templates.vector", c),
    }
    assert {code for *_, code in report.failures} == {"keys.tampered"}
    assert list(ws.store.audit_entries("keys.check"))[-1].payload["failed"] == 3


# -- a workspace made before encryption -----------------------------------------------------------


def _make_legacy(ws: Workspace) -> dict[tuple[str, Any], bytes]:
    """Turn ``ws`` into what a fieldid before encryption left: every biometric value in the
    clear, no keyring, the record-hash key in W/secrets, the index saved in the clear."""
    plain: dict[tuple[str, Any], bytes] = {}
    hash_key = ws.document_key()
    port = ws.gallery.index()
    assert isinstance(port, FaissLocalIndex)  # the default backend: files in the workspace
    index = port.engine(ws.gallery.name)
    with behind_the_back(ws) as s:
        for col in SEALED:
            pk, c = col.columns()
            for k, v in s.execute(select(pk, c).where(c.is_not(None))).all():
                value = ws.keys.open(col, k, v)
                plain[(col.label, k)] = value
                s.execute(c.table.update().where(pk == k).values({col.column: value}))
        s.execute(KeyringEntry.__table__.delete())
    shutil.rmtree(ws.root / INDEX_DIR)
    index.save(ws.root / INDEX_DIR, revision=ws.gallery.revision())
    (ws.root / LEGACY_KEY_FILE).parent.mkdir()
    (ws.root / LEGACY_KEY_FILE).write_bytes(hash_key)
    os.chmod(ws.root / LEGACY_KEY_FILE, 0o600)
    return plain


def test_a_workspace_made_before_encryption_is_sealed_in_place_and_an_interruption_resumes(
    backend: Backend, enrolled: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = enrolled
    _searched(ws, tmp_path)
    root = ws.root
    hash_key = ws.document_key()
    training = ws.training(create=True)  # a training gallery made before encryption too
    dim = training.gallery.dim
    vec = np.full((1, dim), dim**-0.5, dtype=np.float32)
    add_template_people(training, [("trainee-1", "Trainee 1 (synthetic)")], vec)
    training.gallery.flush()
    plain_training = _make_legacy(training)
    plain = _make_legacy(ws)
    ws.close()
    monkeypatch.setenv("FIELDID_KEY_DIR", str(tmp_path / "new-keys"))

    # interrupted after two batches of templates: what was sealed stays sealed, nothing is lost
    monkeypatch.setattr(store_keys, "BATCH", 5)

    def interrupt(label: str, done: int, total: int) -> None:
        if label == TEMPLATE_VECTOR.label and done >= 10:
            raise KeyboardInterrupt

    from fieldid.cli.keys import prepare

    with pytest.raises(KeyboardInterrupt):
        prepare(root, interrupt)
    (key_file,) = (tmp_path / "new-keys").glob("*.key")  # made once, for this workspace
    assert not (root / LEGACY_KEY_FILE).exists()  # the record-hash key moved into the keyring
    assert not list((root / INDEX_DIR).glob("vectors-*"))  # the index in the clear: gone
    ws = Workspace.open(root)  # opening finishes the job
    assert store_keys.plaintext_counts(ws.store) == {c.label: 0 for c in SEALED}
    after = _sealed_values(ws)
    assert after.keys() == plain.keys()
    for (label, k), blob in after.items():
        col = next(c for c in SEALED if c.label == label)
        assert ws.keys.open(col, k, blob) == plain[(label, k)]
    assert ws.document_key() == hash_key  # numbers hashed before still compare
    assert ws.keys.kek_id == fingerprint(FileKek(key_file).load())
    inits = list(ws.store.audit_entries("keys.init"))  # at creation, then at this upgrade
    assert [e.payload["record_hash_key"] for e in inits] == ["new", "imported"]
    # every batch sealed is audited with it, the interrupted run's too
    assert sum(e.payload["sealed"] for e in ws.store.audit_entries("keys.sealed")) == len(plain)
    assert ws.gallery.index().count() == 20
    manifest = json.loads((root / INDEX_DIR / "manifest.json").read_text())
    assert manifest["sealed"] is True
    assert ws.searches.search(subject_images("subject-0002")[1], ATTR).candidates
    t_after = _sealed_values(ws.training())
    assert t_after.keys() == plain_training.keys() and len(t_after) == 1
    for (label, k), blob in t_after.items():
        assert ws.keys.open(TEMPLATE_VECTOR, k, blob) == plain_training[(label, k)]
    assert not (root / "training" / LEGACY_KEY_FILE).exists()
    ws.close()
    if not backend.is_pg:  # no page of the file keeps a value stored in the clear
        blob = (root / "fieldid.db").read_bytes()
        assert not any(v[:64] in blob for v in plain.values())


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def test_an_audit_signing_key_kept_in_a_file_moves_into_the_keyring_on_opening(
    backend: Backend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A workspace that signed exports before the keyring kept the private key in
    ``W/keys/audit-ed25519.pem``: opening it moves the key into the keyring (wrapped by the KEK)
    and removes the file; what it signed before still verifies, and it signs with the same key."""
    ws = backend.init(tmp_path / "ws")
    root = ws.root
    ws.store.append_audit("search", operator="o", purpose="p", case_ref="c", payload={"i": 1})
    # as the code before the keyring left it: an export signed with a PEM file in W/keys
    old = Ed25519PrivateKey.generate()
    old_export = tmp_path / "old.jsonl"
    write_export(read_rows(ws.store), old_export, old, "before")
    ws.close()
    pem = old.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (root / "keys").mkdir(mode=0o700)
    legacy = root / "keys" / "audit-ed25519.pem"
    legacy.write_bytes(pem)
    legacy.chmod(0o600)

    ws = Workspace.open(root)
    assert not legacy.exists() and not (root / "keys" / "audit-ed25519.pem").exists()
    key, where = load_or_create_key(ws.store, root=root)
    assert _raw_private(key) == _raw_private(old) and "keyring" in where
    assert workspace_public_key(root) is not None
    assert key_id(workspace_public_key(root)) == key_id(old.public_key())  # type: ignore[arg-type]
    assert verify_export(read_export(old_export), old.public_key()).ok
    with ws.store.read() as s:
        row = s.get(KeyringEntry, SIGNING_KEY)
        assert row is not None and row.wrapped is not None and row.kek_id == ws.keys.kek_id
        assert _raw_private(old) not in row.wrapped and pem not in row.wrapped
    (moved,) = ws.store.audit_entries("keys.named")
    assert moved.payload["name"] == SIGNING_KEY and moved.payload["imported_from_file"] is True
    assert store_keys.check(ws.keys).checked["keyring"] == 2
    # exports go on with the same key, the public key beside them
    res = export_audit(ws.store, root, ws.clock, Actor("aud", Role.AUDITOR), tmp_path / "n.jsonl")
    assert load_public_key(res.public_key).public_bytes_raw() == old.public_key().public_bytes_raw()
    ws.close()
    # a stray file that is not the keyring's key is left, and said so; never used
    stray = Ed25519PrivateKey.generate()
    legacy.write_bytes(
        stray.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    legacy.chmod(0o600)
    with caplog.at_level("WARNING"), Workspace.open(root) as ws:
        assert _raw_private(load_or_create_key(ws.store)[0]) == _raw_private(old)
    assert legacy.exists() and "is not the signing key" in caplog.text


def test_keyring_migration_round_trip(backend: Backend, tmp_path: Path) -> None:
    from helpers_migrations import round_trip

    # the revision before the keyring's, read from its migration (the lead renumbers at merge)
    versions = Path(__file__).parents[1] / "src/fieldid/store/migrations/versions"
    (mig,) = versions.glob("*_keyring.py")
    before = re.search(r'^down_revision = "(\w+)"$', mig.read_text(), re.M)
    assert before is not None
    round_trip(backend, tmp_path, before.group(1), "keyring")


# -- opening ---------------------------------------------------------------------------------------


def test_a_missing_or_wrong_key_is_refused_never_replaced(
    backend: Backend, enrolled: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root, kek_id, wsid = enrolled.root, enrolled.keys.kek_id, enrolled.keys.workspace_id
    enrolled.close()
    key_file = Path(KEY_DIR) / f"{wsid}.key"
    monkeypatch.setenv("FIELDID_KEK", encode_key(new_key()))
    with pytest.raises(KeysError) as e:
        Workspace.open(root)
    assert e.value.code == "keys.wrong_key" and kek_id in e.value.message
    monkeypatch.delenv("FIELDID_KEK")
    monkeypatch.setenv("FIELDID_KEK_FILE", str(tmp_path / "nowhere.key"))
    with pytest.raises(KeysError) as e:
        Workspace.open(root)
    assert e.value.code == "keys.missing" and "backup" in e.value.message
    monkeypatch.delenv("FIELDID_KEK_FILE")
    os.chmod(key_file, 0o640)
    with pytest.raises(KeysError) as e:
        Workspace.open(root)
    assert e.value.code == "keys.file_mode"
    os.chmod(key_file, 0o600)
    # the same key from any source opens it: here a command, as an agency's KMS client would
    monkeypatch.setenv("FIELDID_KEK_COMMAND", f"cat {key_file}")
    with Workspace.open(root) as ws:
        assert ws.keys.kek_id == kek_id and ws.gallery.size().templates == 20
    # the port, faked
    fake = FakeKek(FileKek(key_file).load())
    ws = Workspace.open(root)
    ws.close()
    keys = store_keys.open_keys(ws.store, KeysSpec(), root, kek=fake)
    assert fake.loads == 1 and keys.kek_id == kek_id


# -- a private workspace --------------------------------------------------------------------------


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink()
    }


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_workspace_is_private_whatever_the_umask(
    backend: Backend, tmp_path: Path, umask: int
) -> None:
    from fieldid.audit.ops import export_audit
    from fieldid.clock import SystemClock
    from fieldid.dataset import LabelledImage
    from fieldid.transparency.pia import generate

    before = os.umask(umask)
    try:
        root = tmp_path / "ws"
        ws = make_workspace(root)
        items = [LabelledImage(subject_images("subject-0001")[0], "subject-0001", None)]
        ws.enrollment.enroll_images(items, operator="t", source_name="fx", synthetic=True)
        ws.searches.search(subject_images("subject-0001")[1], ATTR)
        export_audit(ws.store, root, SystemClock(), Actor("aud", Role.AUDITOR))
        generate(ws, Actor("aud", Role.AUDITOR), out=root / "exports" / "pia.md")
        ws.redress.export(
            Actor("aud", Role.AUDITOR), person="subject-0001", out=root / "exports" / "r.json"
        )
        ws.training(create=True)
        ws.gallery.flush()
        modes = _modes(root)
        if not backend.is_pg:
            assert {"ws/fieldid.db", "ws/fieldid.db-wal", "ws/fieldid.db-shm"} <= modes.keys()
        assert any("/index/vectors-" in k for k in modes)
        assert any(k.startswith("ws/exports/") for k in modes)
        assert any(k.startswith("ws/pia/") for k in modes)
        ws.close()
    finally:
        os.umask(before)
    wrong = {
        k: f"{m:04o}"
        for k, m in modes.items()
        if m != (0o700 if (tmp_path / k).is_dir() else 0o600)
    }
    assert wrong == {}


def test_opening_makes_an_open_workspace_private_and_says_so(
    backend: Backend, enrolled: Workspace
) -> None:
    root = enrolled.root
    enrolled.close()
    admin = tokens(root)[Role.ADMIN]
    os.chmod(root, 0o755)
    os.chmod(root / INDEX_DIR, 0o777)
    os.chmod(root / "fieldid.toml", 0o644)
    res = cli(["keys", "show", "-w", root], token=admin)
    assert res.exit_code == 0, res.output
    said = res.output.replace("\n", "")
    assert "made private" in said and "fieldid.toml (0644 -> 0600)" in said
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / INDEX_DIR).stat().st_mode) == 0o700
    with Workspace.open(root) as ws:
        assert ws.permission_fixes == []
        entry = list(ws.store.audit_entries("workspace.permissions"))[-1]
        assert entry.payload["count"] == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_an_open_entry_another_user_owns_is_refused(backend: Backend, enrolled: Workspace) -> None:
    root = enrolled.root
    enrolled.close()
    stray = root / "index" / "notes.txt"
    stray.write_text("x")
    os.chmod(stray, 0o644)
    os.chown(stray, 65534, 65534)
    from fieldid.errors import WorkspaceError

    with pytest.raises(WorkspaceError) as e:
        Workspace.open(root)
    assert e.value.code == "workspace.permissions" and "notes.txt" in e.value.message


def test_fieldid_init_makes_and_names_the_key_once(backend: Backend, tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    args = ["init", str(tmp_path / "ws"), "--generate-password", "--token-out", str(token_file)]
    if backend.is_pg:
        args += ["--database-url", str(backend.database_url())]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    with Workspace.open(tmp_path / "ws") as ws:
        path = Path(KEY_DIR) / f"{ws.keys.workspace_id}.key"
        kek_row = facts(ws.store)
    assert "Back it up" in res.output and str(path) in res.output.replace("\n", "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kek_row is not None and kek_row["kek_id"] == fingerprint(FileKek(path).load())
    res = cli(["keys", "show", "-w", tmp_path / "ws"], token=token_file.read_text().strip())
    assert res.exit_code == 0 and "Back it up" not in res.output, res.output


def test_sealed_data_whose_keyring_is_gone_is_never_given_a_new_key(
    backend: Backend, enrolled: Workspace
) -> None:
    with behind_the_back(enrolled) as s:
        s.execute(KeyringEntry.__table__.delete())
    root = enrolled.root
    enrolled.close()
    with pytest.raises(KeysError) as e:
        Workspace.open(root)
    assert e.value.code == "keys.keyring_missing" and "backup" in e.value.message


# -- remote vector engines -------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["pgvector", "milvus"])
def test_on_pgvector_and_milvus_the_templates_stay_sealed_and_the_engine_gets_them_opened(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An engine searches vectors in the clear (docs/security.md): the templates table stays
    sealed, and every path that feeds the engine from it (enrollment through the transaction or
    the outbox drain, a rebuild, a check, a search's re-rank) opens the templates first."""
    from conftest import FACES
    from fieldid.dataset import read_labelled
    from helpers_storage import using

    if engine == "pgvector":
        kind = Backend("postgresql", request.getfixturevalue("pg_server"), index="pgvector")
    else:
        kind = Backend("sqlite", index="milvus", milvus_uri=request.getfixturevalue("milvus_uri"))
    root = tmp_path / "ws"
    try:
        with using(kind):
            ws = make_workspace(root)
        items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")][:6]
        summary = ws.enrollment.enroll_images(
            items, operator="test", source_name="fixtures", synthetic=True
        )
        assert summary.enrolled == 6 and ws.gallery.backend == engine
        with ws.store.read() as s:
            rows = s.execute(select(TemplateRow.id, TemplateRow.vector)).all()
        assert len(rows) == 6
        for tid, blob in rows:
            plain = ws.keys.open(TEMPLATE_VECTOR, tid, blob)
            assert plain[:16] not in blob  # sealed in the table
            found = ws.gallery.index().search(
                np.frombuffer(plain, dtype="<f4"), 1, gallery=ws.gallery.name
            )
            assert int(found.ids[0][0]) == tid  # the engine holds the opened vector
        assert ws.gallery.rebuild_index() == 6
        report = ws.gallery.check_index(sample=6)
        assert report.ok, report.describe()
        hits = ws.searches.search(subject_images("subject-0002")[1], ATTR).candidates
        assert hits and hits[0].external_id == "subject-0002"
        ws.close()
        admin = tokens(root)[Role.ADMIN]
        res = cli(["keys", "check", "-w", root, "--json"], token=admin)
        assert res.exit_code == 0, res.output
        out = json.loads(res.output[res.output.index("{") :])
        assert out["workspace"]["index_on_disk"] == f"on the {engine} server, not sealed by fieldid"
    finally:
        kind.drop_made()
