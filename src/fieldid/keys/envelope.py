"""Envelope encryption of records: each record under its own data key, the data key wrapped by
the key-encryption key (KEK).

A sealed record (:meth:`Keyring.seal`) is one self-describing byte string::

    offset  size  field
    0       4     magic b"FIDE"
    4       1     format version (1)
    5       8     KEK fingerprint: which key-encryption key wraps the data key
    13      60    the data key wrapped by the KEK: nonce (12) | AES-256-GCM(32-byte key) | tag (16)
    73      12    nonce of the data
    85      n+16  AES-256-GCM(data) | tag

Both layers are authenticated. The data is bound to ``aad``, which names what the record is and
where it belongs (``templates.vector`` of template 42), so a sealed value copied into another
row, column or class does not open. The wrapped key is bound to the KEK's fingerprint and to the
same ``aad``. Rotation (:meth:`Keyring.rewrap`) replaces bytes 5–72 only: the data is not
encrypted again.

Every data key is new (32 random bytes) and encrypts one value once. Data keys are wrapped with
AES-GCM under random 96-bit nonces, which holds for up to 2^32 wraps per KEK (NIST SP 800-38D);
rotate the KEK well before a workspace has written that many records under it.

No plaintext fieldid stores can begin with the magic: a template is float32 values of magnitude
at most 1 (b"FIDE" would read as 3140.6), an image starts with its format's own signature.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fieldid.keys.errors import KeysError
from fieldid.keys.kek import KEY_BYTES, fingerprint

MAGIC = b"FIDE"
VERSION = 1
NONCE = 12
TAG = 16
KEK_ID = 8
WRAPPED = NONCE + KEY_BYTES + TAG
HEADER = len(MAGIC) + 1 + KEK_ID + WRAPPED + NONCE  # 85
#: Bytes a sealed record takes beyond its data.
OVERHEAD = HEADER + TAG  # 101
_KEK_AT = len(MAGIC) + 1
_WRAP_AT = _KEK_AT + KEK_ID
_NONCE_AT = _WRAP_AT + WRAPPED
_WRAP_LABEL = b"fieldid-dek-v1\0"
_DATA_LABEL = b"fieldid-data-v1\0"
_KEY_LABEL = b"fieldid-named-key-v1\0"


def is_sealed(blob: bytes | memoryview | None) -> bool:
    """Whether ``blob`` is a sealed record (by its magic and length; not whether it opens)."""
    return blob is not None and len(blob) >= OVERHEAD and bytes(blob[:4]) == MAGIC


def wrapped_by(blob: bytes) -> str:
    """The fingerprint of the KEK that wraps a sealed record's data key."""
    if not is_sealed(blob):
        raise KeysError("not a sealed record", code="keys.not_sealed")
    return blob[_KEK_AT:_WRAP_AT].hex()


class Keyring:
    """Seals and opens records with a KEK. ``kek``: the current key (new data keys are wrapped
    under it); ``others``: keys that may still wrap older records (during a rotation)."""

    def __init__(self, kek: bytes, *, others: Iterable[bytes] = ()) -> None:
        if len(kek) != KEY_BYTES:
            raise KeysError(f"a KEK is {KEY_BYTES} bytes", code="keys.bad_material")
        self.kek_id = fingerprint(kek)
        self._keks: dict[bytes, AESGCM] = {bytes.fromhex(self.kek_id): AESGCM(kek)}
        for k in others:
            self._keks.setdefault(bytes.fromhex(fingerprint(k)), AESGCM(k))
        self._current = bytes.fromhex(self.kek_id)

    @property
    def kek_ids(self) -> list[str]:
        """Fingerprints of every KEK this keyring holds, the current one first."""
        return [self.kek_id] + [k.hex() for k in self._keks if k != self._current]

    def with_current(self, kek: bytes) -> Keyring:
        """A keyring that wraps under ``kek`` and still opens what this one opens."""
        out = Keyring(kek)
        for kid, aes in self._keks.items():
            out._keks.setdefault(kid, aes)
        return out

    def _kek(self, kid: bytes) -> AESGCM:
        try:
            return self._keks[kid]
        except KeyError:
            raise KeysError(
                f"this record's key is wrapped by the key-encryption key {kid.hex()}, which is "
                f"not the one configured ({self.kek_id}): configure that key, or finish the "
                "rotation that replaced it (`fieldid keys rotate`)",
                code="keys.unknown_kek",
                wrapped_by=kid.hex(),
                configured=self.kek_id,
            ) from None

    # -- records -------------------------------------------------------------------------------

    def seal(self, data: bytes | memoryview, aad: bytes) -> bytes:
        """``data`` under a new data key, wrapped by the current KEK, bound to ``aad``."""
        dek = os.urandom(KEY_BYTES)
        head = MAGIC + bytes([VERSION]) + self._current
        wrap_nonce = os.urandom(NONCE)
        wrapped = self._keks[self._current].encrypt(wrap_nonce, dek, _WRAP_LABEL + head + aad)
        nonce = os.urandom(NONCE)
        body = AESGCM(dek).encrypt(nonce, bytes(data), _DATA_LABEL + aad)
        return b"".join((head, wrap_nonce, wrapped, nonce, body))

    def _dek(self, blob: bytes, aad: bytes) -> bytes:
        if not is_sealed(blob):
            raise KeysError(
                "the value is not sealed (stored in the clear, or not a fieldid record)",
                code="keys.not_sealed",
            )
        if blob[4] != VERSION:
            raise KeysError(f"unknown sealed-record version {blob[4]}", code="keys.not_sealed")
        kid = blob[_KEK_AT:_WRAP_AT]
        wrap = blob[_WRAP_AT:_NONCE_AT]
        try:
            return self._kek(kid).decrypt(
                wrap[:NONCE], wrap[NONCE:], _WRAP_LABEL + blob[:_WRAP_AT] + aad
            )
        except InvalidTag:
            raise KeysError(
                "a sealed record's data key does not open: the record was altered or moved from "
                "where it was written",
                code="keys.tampered",
            ) from None

    def open(self, blob: bytes | memoryview, aad: bytes) -> bytes:
        """The data sealed in ``blob`` for ``aad``; :class:`KeysError` when it does not open."""
        b = bytes(blob)
        dek = self._dek(b, aad)
        try:
            return AESGCM(dek).decrypt(b[_NONCE_AT:HEADER], b[HEADER:], _DATA_LABEL + aad)
        except InvalidTag:
            raise KeysError(
                "a sealed record does not open: it was altered or moved from where it was written",
                code="keys.tampered",
            ) from None

    def rewrap(self, blob: bytes | memoryview, aad: bytes) -> bytes:
        """``blob`` with its data key wrapped by the current KEK; the encrypted data (bytes 73
        on) is kept byte for byte. A record already under the current KEK is returned as is."""
        b = bytes(blob)
        if b[_KEK_AT:_WRAP_AT] == self._current:
            return b
        dek = self._dek(b, aad)
        head = MAGIC + bytes([VERSION]) + self._current
        wrap_nonce = os.urandom(NONCE)
        wrapped = self._keks[self._current].encrypt(wrap_nonce, dek, _WRAP_LABEL + head + aad)
        return b"".join((head, wrap_nonce, wrapped, b[_NONCE_AT:]))

    # -- named keys (the record-hash key, a file's data key) -------------------------------------

    def wrap_key(self, key: bytes, name: str) -> bytes:
        """A secret key (e.g. the record-hash key) wrapped under the current KEK:
        KEK fingerprint (8) | nonce (12) | AES-GCM(key) | tag (16)."""
        nonce = os.urandom(NONCE)
        label = _KEY_LABEL + name.encode() + b"\0" + self._current
        return self._current + nonce + self._keks[self._current].encrypt(nonce, key, label)

    def unwrap_key(self, wrapped: bytes, name: str) -> bytes:
        kid, nonce, body = wrapped[:KEK_ID], wrapped[KEK_ID : KEK_ID + NONCE], wrapped[20:]
        try:
            return self._kek(kid).decrypt(nonce, body, _KEY_LABEL + name.encode() + b"\0" + kid)
        except InvalidTag:
            raise KeysError(
                f"the wrapped key {name!r} does not open: it was altered",
                code="keys.tampered",
            ) from None

    @staticmethod
    def key_wrapped_by(wrapped: bytes) -> str:
        return wrapped[:KEK_ID].hex()
