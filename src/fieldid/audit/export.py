"""Exporting the audit log with a signed head, so that an outside party can check it.

An export is a JSON Lines file: one line per entry (every stored column, the payload as the exact
canonical JSON the hash covers), then one ``head`` line::

    {"type": "entry", "seq": 1, "at": "...", "event": "search", ..., "prev_hash": "…", "hash": "…"}
    {"type": "head", "format": 1, "first_seq": 1, "first_prev_hash": "000…", "seq": 42,
     "hash": "…", "count": 42, "exported_at": "…", "key_id": "…", "signature": "…"}

The head is signed with Ed25519 over its canonical JSON without ``signature``. Because each hash
covers the one before it, the head hash commits to every entry up to it; a signature over the head
is a signature over the whole log. :func:`verify_export` recomputes every hash and checks the
signature; :func:`verify_extension` proves a later export extends an earlier one (the earlier
head's entry is present, with the same hash, at the same seq, and every entry they share is equal).

The private key is kept in the workspace's keyring (entry ``audit-signing``, wrapped by the
key-encryption key held outside the workspace, rotated and checked with the other keys; created on
first use) unless ``--key`` names a PEM file; so a copy of the workspace without its KEK cannot
sign. Its public key is written to ``W/keys/audit-ed25519.pub.pem`` (so that stored assessments
are checked without the KEK) and beside each export (``<export>.pub.pem``), and should be handed
to the outside party once, by a separate channel, so a substituted key is noticed. A workspace made
before the keyring kept the private key in ``W/keys/audit-ed25519.pem``: opening the workspace
moves it into the keyring and removes the file (:func:`adopt_legacy_key`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fieldid.audit.log import canonical_json
from fieldid.audit.verify import Row, VerifyResult, read_rows, verify_entries
from fieldid.errors import FieldidError
from fieldid.store import Store
from fieldid.store.keys import StoreKeys, named_key, put_named_key, store_keys

FORMAT = 1
KEY_DIR = "keys"
#: Where a workspace made before the keyring kept its private signing key (moved on opening).
KEY_NAME = "audit-ed25519.pem"
#: The public signing key, kept in the workspace for checking without the KEK.
PUBLIC_NAME = "audit-ed25519.pub.pem"
#: The keyring entry that holds the private signing key (wrapped by the KEK).
SIGNING_KEY = "audit-signing"

log = logging.getLogger(__name__)


class ExportError(FieldidError):
    """An export could not be written, read or verified. Codes ``audit.*``."""

    code = "audit.export_invalid"


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from an unencrypted PEM file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ExportError(
            f"{path} is not an unencrypted PEM private key: {e}", code="audit.bad_key"
        ) from e
    except OSError as e:
        raise ExportError(f"cannot read {path}: {e}", code="audit.bad_key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ExportError(f"{path} is not an Ed25519 key", code="audit.bad_key")
    return key


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def _write_public(root: Path | None, key: Ed25519PublicKey) -> None:
    """The workspace's public signing key, where ``fieldid pia verify`` finds it."""
    if root is None:
        return
    path = root / KEY_DIR / PUBLIC_NAME
    pem = public_pem(key)
    if path.is_file() and path.read_bytes() == pem:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, path)


def load_or_create_key(
    store: Store, key_path: Path | None = None, *, root: Path | None = None
) -> tuple[Ed25519PrivateKey, str]:
    """The signing key and where it is kept, in words: ``key_path`` (a PEM file) if given, else
    the one in the workspace's keyring (``store``'s; made on first use). ``root``: the
    workspace, where the public key is written."""
    if key_path is not None:
        if not key_path.exists():
            raise ExportError(f"no key at {key_path}", code="audit.bad_key")
        return load_key_file(key_path), str(key_path)
    keys = store_keys(store)
    raw = named_key(keys, SIGNING_KEY)
    if raw is None:
        new = Ed25519PrivateKey.generate()
        raw = put_named_key(
            keys,
            SIGNING_KEY,
            _raw(new),
            detail={"kind": "ed25519", "key_id": key_id(new.public_key())},
        )
    key = Ed25519PrivateKey.from_private_bytes(raw)
    _write_public(root, key.public_key())
    return key, f"the workspace's keyring ({SIGNING_KEY}, wrapped by the key {keys.kek_id})"


def signing_public_key(store: Store) -> Ed25519PublicKey | None:
    """The public half of the workspace's signing key, if the keyring holds one (none is made)."""
    raw = named_key(store_keys(store), SIGNING_KEY)
    return None if raw is None else Ed25519PrivateKey.from_private_bytes(raw).public_key()


def workspace_public_key(root: Path) -> Ed25519PublicKey | None:
    """The workspace's public signing key from its folder, read without the KEK: the public key
    file, else (a workspace not opened since the key moved into the keyring) the old private
    key file's public half; None when there is neither."""
    public = root / KEY_DIR / PUBLIC_NAME
    if public.is_file():
        return load_public_key(public)
    legacy = root / KEY_DIR / KEY_NAME
    if legacy.is_file():
        return load_key_file(legacy).public_key()
    return None


def adopt_legacy_key(keys: StoreKeys, root: Path) -> bool:
    """Move the signing key of a workspace made before the keyring (``W/keys/audit-ed25519.pem``)
    into the keyring, then overwrite and remove the file (its public key stays, in
    ``audit-ed25519.pub.pem``). A file that is not the keyring's key (the keyring held another
    already) is left, with a warning. Returns whether the file was moved."""
    path = root / KEY_DIR / KEY_NAME
    if not path.is_file():
        return False
    key = load_key_file(path)
    raw = _raw(key)
    kept = put_named_key(
        keys,
        SIGNING_KEY,
        raw,
        detail={"kind": "ed25519", "key_id": key_id(key.public_key()), "imported_from_file": True},
    )
    if kept != raw:
        log.warning(
            "%s is not the signing key in the workspace's keyring and is not used: delete it",
            path,
        )
        return False
    _write_public(root, key.public_key())
    with open(path, "r+b") as f:
        f.write(b"\0" * len(path.read_bytes()))
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    log.info("the audit signing key moved from %s into the workspace's keyring", path)
    return True


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key: names the key in each head."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (ValueError, OSError) as e:
        raise ExportError(f"cannot read a public key from {path}: {e}", code="audit.bad_key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ExportError(f"{path} is not an Ed25519 public key", code="audit.bad_key")
    return key


def _signed_body(head: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in head.items() if k != "signature"}).encode()


@dataclass(frozen=True)
class Export:
    rows: list[Row]
    head: dict[str, Any]


def write_export(
    rows: list[Row], out: Path, key: Ed25519PrivateKey, exported_at: str
) -> dict[str, Any]:
    """Write ``rows`` and a signed head to ``out`` (and the public key to ``out.pub.pem``).

    Refuses to export a log that does not verify: a signature must never vouch for a broken chain.
    """
    check = verify_entries(rows)
    if not check.ok:
        raise ExportError(
            f"the audit log does not verify ({check.message}); it is not exported",
            code="audit.chain_broken",
            problem=check.to_dict()["problem"],
        )
    pub = key.public_key()
    head: dict[str, Any] = {
        "type": "head",
        "format": FORMAT,
        "first_seq": check.start_seq,
        "first_prev_hash": check.start_prev_hash,
        "seq": check.head_seq,
        "hash": check.head_hash,
        "count": len(rows),
        "exported_at": exported_at,
        "key_id": key_id(pub),
    }
    head["signature"] = base64.b64encode(key.sign(_signed_body(head))).decode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"type": "entry", **r.to_dict()}, ensure_ascii=False) + "\n")
        f.write(json.dumps(head) + "\n")
    tmp.replace(out)
    pub_path(out).write_bytes(public_pem(pub))
    return head


def pub_path(export: Path) -> Path:
    return export.with_name(export.name + ".pub.pem")


def read_export(path: Path) -> Export:
    rows: list[Row] = []
    head: dict[str, Any] | None = None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ExportError(f"cannot read {path}: {e}", code="audit.export_unreadable") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if head is not None:
                raise ValueError("a line follows the head")
            if d.get("type") == "head":
                head = d
            elif d.get("type") == "entry":
                rows.append(Row.from_dict(d))
            else:
                raise ValueError(f"unknown line type {d.get('type')!r}")
        except (ValueError, KeyError, TypeError) as e:
            raise ExportError(f"{path}:{n}: {e}", code="audit.export_malformed") from e
    if head is None:
        raise ExportError(f"{path} has no head line", code="audit.export_malformed")
    return Export(rows, head)


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    message: str
    chain: VerifyResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "message": self.message,
            "chain": None if self.chain is None else self.chain.to_dict(),
        }


def verify_export(ex: Export, public_key: Ed25519PublicKey) -> ExportCheck:
    """Signature valid, every hash recomputes and links, and the head names the last entry."""
    head = ex.head
    try:
        public_key.verify(base64.b64decode(head.get("signature", "")), _signed_body(head))
    except (InvalidSignature, ValueError):
        return ExportCheck(False, "the head's signature does not verify with this public key")
    if head.get("key_id") != key_id(public_key):
        return ExportCheck(False, "the head names another key")
    if not ex.rows:
        return ExportCheck(False, "the export holds no entries")
    start = (int(head["first_seq"]), str(head["first_prev_hash"]))
    chain = verify_entries(ex.rows, start=start)
    if not chain.ok:
        return ExportCheck(False, f"the entries do not verify: {chain.message}", chain)
    if (chain.head_seq, chain.head_hash, len(ex.rows)) != (
        head["seq"],
        head["hash"],
        head["count"],
    ):
        return ExportCheck(False, "the signed head does not match the last entry", chain)
    return ExportCheck(
        True, f"entries {start[0]}-{head['seq']}, every hash and the head's signature", chain
    )


def verify_extension(old: Export, new: Export, public_key: Ed25519PublicKey) -> ExportCheck:
    """Both exports valid, and ``new`` extends ``old``: every entry they share is identical and
    ``old``'s head entry is in ``new`` at the same seq with the same hash."""
    for name, ex in (("old", old), ("new", new)):
        c = verify_export(ex, public_key)
        if not c.ok:
            return ExportCheck(False, f"the {name} export is not valid: {c.message}", c.chain)
    old_head = (int(old.head["seq"]), str(old.head["hash"]))
    new_by_seq = {r.seq: r for r in new.rows}
    if new.rows[0].seq > old_head[0]:
        return ExportCheck(
            False,
            f"the new export starts at entry {new.rows[0].seq}, after the old head "
            f"{old_head[0]} (purged under retention): the old head cannot be found in it",
        )
    if old_head[0] > new.rows[-1].seq:
        return ExportCheck(
            False, f"the new export ends at {new.rows[-1].seq}, before the old head {old_head[0]}"
        )
    for r in old.rows:
        other = new_by_seq.get(r.seq)
        if other is None:
            continue  # purged from the log under retention since the old export
        if other.hash != r.hash or other.to_dict() != r.to_dict():
            return ExportCheck(
                False, f"entry {r.seq} differs between the exports: the log was rewritten"
            )
    if new_by_seq[old_head[0]].hash != old_head[1]:
        return ExportCheck(False, f"the old head {old_head[0]} is not in the new export")
    return ExportCheck(
        True,
        f"the new export (to {new.head['seq']}) extends the old one (to {old_head[0]}); both "
        "signatures are valid",
    )


def export_log(
    ws_root: Path, store: Store, out: Path, exported_at: str, key: Path | None
) -> tuple[dict[str, Any], str]:
    """Export the workspace log to ``out`` (see :func:`write_export`); returns (head, where the
    signing key is kept)."""
    private, key_path = load_or_create_key(store, key, root=ws_root)
    head = write_export(read_rows(store), out, private, exported_at)
    return head, key_path
