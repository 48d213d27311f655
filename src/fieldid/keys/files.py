"""Sealed files: a file's content under its own data key, in authenticated segments.

For what is too large to seal in one piece (the vector index's arrays: 1 GB at a million 256-d
templates) and for files a feature keeps beside the database (document images). Layout::

    offset  size  field
    0       4     magic b"FIDF"
    4       1     format version (1)
    5       8     fingerprint of the KEK that wraps the data key
    13      60    the data key wrapped by the KEK (nonce | AES-256-GCM(key) | tag)
    73      8     nonce prefix (random)
    81      …     segments: AES-256-GCM of 1 MiB of content each (the last shorter, possibly
                  empty), nonce = prefix | segment number (4 bytes), tag appended

Each segment is bound to the file's label (what the file is, e.g. ``index/vectors``), its number
and whether it is the last, so segments cannot be reordered, dropped, or the file cut short at a
segment boundary without the reader noticing. Reading and writing stream: memory holds one
segment beyond what the caller keeps. :func:`rewrap_file` re-wraps the data key in place (the
header has a fixed size); the segments are untouched.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fieldid.keys.envelope import KEK_ID, TAG, WRAPPED, Keyring
from fieldid.keys.errors import KeysError
from fieldid.keys.kek import KEY_BYTES

MAGIC = b"FIDF"
VERSION = 1
PREFIX = 8
HEADER = len(MAGIC) + 1 + KEK_ID + WRAPPED + PREFIX  # 81
SEGMENT = 1 << 20
_SEG_LABEL = b"fieldid-file-v1\0"


def _file_key_name(label: str) -> str:
    return "file:" + label


def _segment_aad(label: bytes, n: int, final: bool) -> bytes:
    return _SEG_LABEL + label + b"\0" + struct.pack(">IB", n, 1 if final else 0)


def is_sealed_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class SealedWriter:
    """A binary writer that seals what is written to ``out`` (a file opened ``wb``). Close it
    (or leave its ``with`` block) to write the final segment; the caller closes ``out``."""

    def __init__(self, out: BinaryIO, keyring: Keyring, label: str) -> None:
        self._out = out
        self._label = label.encode()
        dek = os.urandom(KEY_BYTES)
        wrapped = keyring.wrap_key(dek, _file_key_name(label))  # kek id | nonce | key+tag
        self._prefix = os.urandom(PREFIX)
        out.write(MAGIC + bytes([VERSION]) + wrapped + self._prefix)
        self._aes = AESGCM(dek)
        self._buf = bytearray()
        self._n = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to a closed sealed file")
        self._buf += data
        while len(self._buf) > SEGMENT:
            self._emit(bytes(self._buf[:SEGMENT]), final=False)
            del self._buf[:SEGMENT]
        return len(data)

    def _emit(self, chunk: bytes, *, final: bool) -> None:
        nonce = self._prefix + struct.pack(">I", self._n)
        self._out.write(self._aes.encrypt(nonce, chunk, _segment_aad(self._label, self._n, final)))
        self._n += 1

    def close(self) -> None:
        if self._closed:
            return
        if len(self._buf) == SEGMENT:  # the last segment is always shorter than a full one
            self._emit(bytes(self._buf), final=False)
            self._buf.clear()
        self._emit(bytes(self._buf), final=True)
        self._buf.clear()
        self._closed = True

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()


class SealedReader:
    """A binary reader of a sealed file (``src`` opened ``rb``): ``read(n)`` gives the content,
    segment by segment, each checked before any of it is returned. A file cut short, reordered
    or altered raises :class:`KeysError` (``keys.tampered``)."""

    def __init__(self, src: BinaryIO, keyring: Keyring, label: str) -> None:
        self._src = src
        self._label = label.encode()
        head = src.read(HEADER)
        if len(head) < HEADER or head[:4] != MAGIC:
            raise KeysError(f"{label} is not a sealed file", code="keys.not_sealed")
        if head[4] != VERSION:
            raise KeysError(f"{label}: unknown sealed-file version", code="keys.not_sealed")
        dek = keyring.unwrap_key(head[5 : 5 + KEK_ID + WRAPPED], _file_key_name(label))
        self._aes = AESGCM(dek)
        self._prefix = head[5 + KEK_ID + WRAPPED :]
        self._buf = b""
        self._pos = 0
        self._n = 0
        self._done = False

    def _next(self) -> None:
        chunk = self._src.read(SEGMENT + TAG)
        final = len(chunk) < SEGMENT + TAG
        if len(chunk) < TAG:
            raise KeysError("a sealed file is cut short", code="keys.tampered")
        nonce = self._prefix + struct.pack(">I", self._n)
        try:
            self._buf = self._aes.decrypt(nonce, chunk, _segment_aad(self._label, self._n, final))
        except InvalidTag:
            raise KeysError(
                "a sealed file does not open: it was altered, cut short or is not the file its "
                "name says",
                code="keys.tampered",
            ) from None
        self._pos = 0
        self._n += 1
        if final:
            if self._src.read(1):
                raise KeysError("a sealed file has bytes after its end", code="keys.tampered")
            self._done = True

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n
        while want != 0:
            if self._pos >= len(self._buf):
                if self._done:
                    break
                self._next()
                continue
            take = len(self._buf) - self._pos if want < 0 else min(want, len(self._buf) - self._pos)
            parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            if want > 0:
                want -= take
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)


def write_sealed(path: Path, data: bytes, keyring: Keyring, label: str) -> None:
    """Write ``data`` sealed to ``path`` (created 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f, SealedWriter(f, keyring, label) as w:
        w.write(data)


def read_sealed(path: Path, keyring: Keyring, label: str) -> bytes:
    with open(path, "rb") as f:
        return SealedReader(f, keyring, label).readall()


def file_wrapped_by(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(HEADER)
    if len(head) < HEADER or head[:4] != MAGIC:
        raise KeysError(f"{path} is not a sealed file", code="keys.not_sealed")
    return head[5 : 5 + KEK_ID].hex()


def rewrap_file(path: Path, keyring: Keyring, label: str) -> bool:
    """Re-wrap a sealed file's data key under ``keyring``'s current KEK, in place (the segments
    are not touched). Returns False when it already was."""
    with open(path, "r+b") as f:
        head = f.read(HEADER)
        if len(head) < HEADER or head[:4] != MAGIC:
            raise KeysError(f"{path} is not a sealed file", code="keys.not_sealed")
        wrapped = head[5 : 5 + KEK_ID + WRAPPED]
        if Keyring.key_wrapped_by(wrapped) == keyring.kek_id:
            return False
        dek = keyring.unwrap_key(wrapped, _file_key_name(label))
        f.seek(5)
        f.write(keyring.wrap_key(dek, _file_key_name(label)))
        f.flush()
        os.fsync(f.fileno())
    return True
