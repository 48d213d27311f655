"""Detached Ed25519 signatures for the documents fieldid publishes (assessments, reports).

A signed file ``F`` gets two files beside it:

- ``F.sig``: JSON ``{"format": 1, "kind", "file", "size", "sha256", "signed_at", "key_id",
  "signature"}``, where ``signature`` is Ed25519 (base64) over the canonical JSON of the other
  fields. The digest covers every byte of ``F``, so one changed byte fails the check.
- ``F.pub.pem``: the public key, as beside audit exports. It proves nothing by itself (whoever
  changes ``F`` can replace it); hand the key to the outside party once, by another channel, and
  check with ``--public-key``. ``key_id`` names the key in every signature.

The key is the workspace's export signing key (the one audit exports are signed with, kept in
the workspace's keyring under its key-encryption key; its public key in
``W/keys/audit-ed25519.pub.pem``; :func:`fieldid.audit.export.load_or_create_key`). A verifier
needs only SHA-256, canonical JSON and Ed25519.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fieldid.audit.export import key_id, load_public_key, pub_path, public_pem
from fieldid.audit.log import canonical_json
from fieldid.errors import FieldidError

FORMAT = 1


class SignatureError(FieldidError):
    """A signature could not be written or read. Codes ``signature.*``."""

    code = "signature.invalid"


def sig_path(path: Path) -> Path:
    return path.with_name(path.name + ".sig")


def _digest(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def _body(sig: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in sig.items() if k != "signature"}).encode()


def sign_file(path: Path, key: Ed25519PrivateKey, *, kind: str, signed_at: str) -> dict[str, Any]:
    """Sign ``path`` as it is now; write ``path.sig`` and ``path.pub.pem``; return the signature."""
    digest, size = _digest(path)
    sig: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "file": path.name,
        "size": size,
        "sha256": digest,
        "signed_at": signed_at,
        "key_id": key_id(key.public_key()),
    }
    sig["signature"] = base64.b64encode(key.sign(_body(sig))).decode()
    sig_path(path).write_text(json.dumps(sig, indent=2) + "\n", encoding="utf-8")
    pub_path(path).write_bytes(public_pem(key.public_key()))
    return sig


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    message: str
    path: str
    key_id: str | None = None
    sha256: str | None = None
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_signature(path: Path) -> dict[str, Any]:
    s = sig_path(path)
    try:
        sig = json.loads(s.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SignatureError(
            f"{path} has no signature ({s.name} is missing)", code="signature.missing"
        ) from e
    except (OSError, ValueError) as e:
        raise SignatureError(f"cannot read {s}: {e}", code="signature.unreadable") from e
    if not isinstance(sig, dict) or sig.get("format") != FORMAT:
        raise SignatureError(
            f"{s} is not a fieldid signature (format {FORMAT})", code="signature.unreadable"
        )
    return sig


def verify_file(path: Path, public_key: Ed25519PublicKey | Path | None = None) -> SignatureCheck:
    """Check ``path`` against ``path.sig``: the signature with ``public_key`` (default: the
    ``path.pub.pem`` beside it), the key id, and the file's size and SHA-256."""
    where = str(path)
    try:
        sig = read_signature(path)
        if public_key is None:
            public_key = pub_path(path)
        key = load_public_key(public_key) if isinstance(public_key, Path) else public_key
    except FieldidError as e:
        return SignatureCheck(False, e.message, where)
    kid, kind = sig.get("key_id"), sig.get("kind")
    try:
        key.verify(base64.b64decode(str(sig.get("signature", ""))), _body(sig))
    except (InvalidSignature, ValueError):
        return SignatureCheck(
            False, "the signature does not verify with this public key", where, kid, None, kind
        )
    if kid != key_id(key):
        return SignatureCheck(False, "the signature names another key", where, kid, None, kind)
    try:
        digest, size = _digest(path)
    except OSError as e:
        return SignatureCheck(False, f"cannot read {path}: {e}", where, kid, None, kind)
    if (digest, size) != (sig.get("sha256"), sig.get("size")):
        return SignatureCheck(
            False,
            "the file is not the one signed: its content changed after signing",
            where,
            kid,
            digest,
            kind,
        )
    return SignatureCheck(
        True,
        f"signed {sig.get('signed_at')} by key {kid}; content unchanged",
        where,
        kid,
        digest,
        kind,
    )
