"""Where the key-encryption key (KEK) comes from: a small port and its adapters.

The KEK never lives in the workspace or its database. It comes from one of:

======================= ====================================================================
adapter                 the key is
======================= ====================================================================
:class:`FileKek`        a file (default ``~/.config/fieldid/keys/<workspace-id>.key``), which
                        must be the user's own and mode 0600 or stricter
:class:`EnvKek`         an environment variable's value
:class:`CommandKek`     what a command prints (an agency's KMS or HSM client)
======================= ====================================================================

Key material is 32 random bytes written as base64 (44 characters) or hex (64), one line. A KEK
is known by its fingerprint (:func:`fingerprint`): 16 hex digits of an HMAC of the key, which
say which key wraps a record without revealing anything about it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import shlex
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from fieldid.keys.errors import KeysError

KEY_BYTES = 32
FINGERPRINT_LABEL = b"fieldid key fingerprint v1"
#: Seconds a key command may take before it is abandoned.
COMMAND_TIMEOUT = 30.0


class KekSource(Protocol):
    """Where a key-encryption key comes from."""

    def describe(self) -> str:
        """Where the key is, in words (never the key)."""
        ...

    def load(self) -> bytes:
        """The 32-byte key; :class:`KeysError` when it cannot be had."""
        ...


def fingerprint(key: bytes) -> str:
    """16 hex digits naming ``key`` (an HMAC under the key: reveals nothing of it)."""
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def parse_key(text: bytes | str, origin: str) -> bytes:
    """32 bytes from base64 or hex text (surrounding whitespace ignored)."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    s = raw.strip()
    key: bytes | None = None
    if len(s) == 2 * KEY_BYTES:
        try:
            key = bytes.fromhex(s)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise KeysError(
            f"{origin} does not hold a key: it must be {KEY_BYTES} random bytes written as "
            f"base64 or hex on one line (make one with `fieldid keys new-key`)",
            code="keys.bad_material",
            origin=origin,
        )
    return key


class FileKek:
    """A key file outside the workspace, owned by the user running fieldid, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()

    def describe(self) -> str:
        return f"file {self.path}"

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> bytes:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise KeysError(
                f"the key file {self.path} does not exist",
                code="keys.missing",
                source=self.describe(),
            ) from None
        except OSError as e:
            raise KeysError(
                f"the key file {self.path} cannot be read: {e.strerror}",
                code="keys.unreadable",
                source=self.describe(),
            ) from e
        if not stat.S_ISREG(st.st_mode):
            raise KeysError(f"{self.path} is not a file", code="keys.unreadable")
        if st.st_mode & 0o077:
            raise KeysError(
                f"the key file {self.path} can be read by other users (mode "
                f"{stat.S_IMODE(st.st_mode):04o}): make it private with `chmod 600 {self.path}` "
                "and consider the key exposed (rotate it: `fieldid keys rotate`)",
                code="keys.file_mode",
                source=self.describe(),
            )
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise KeysError(
                f"the key file {self.path} belongs to another user (uid {st.st_uid})",
                code="keys.file_owner",
                source=self.describe(),
            )
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise KeysError(
                f"the key file {self.path} cannot be read: {e.strerror}",
                code="keys.unreadable",
                source=self.describe(),
            ) from e
        return parse_key(data, str(self.path))

    def create(self) -> bytes:
        """Write a new random key to the file (which must not exist), mode 0600 in a 0700
        folder, whatever the umask; returns it."""
        key = new_key()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (encode_key(key) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return key


class EnvKek:
    """A key held in an environment variable (base64 or hex)."""

    def __init__(self, var: str, environ: Mapping[str, str] | None = None) -> None:
        self.var = var
        self._environ = environ

    def describe(self) -> str:
        return f"environment variable {self.var}"

    def load(self) -> bytes:
        env = os.environ if self._environ is None else self._environ
        value = env.get(self.var)
        if not value:
            raise KeysError(
                f"the environment variable {self.var} is not set",
                code="keys.missing",
                source=self.describe(),
            )
        return parse_key(value, f"the environment variable {self.var}")


class CommandKek:
    """A key printed by a command (a KMS or HSM client): its standard output, one line."""

    def __init__(self, command: str | Sequence[str]) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise KeysError("the key command is empty", code="keys.bad_source")

    def describe(self) -> str:
        return f"command {shlex.join(self.argv)}"

    def load(self) -> bytes:
        try:
            done = subprocess.run(
                self.argv,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise KeysError(
                f"the key command {self.argv[0]!r} was not found",
                code="keys.command_failed",
                source=self.describe(),
            ) from None
        except subprocess.TimeoutExpired:
            raise KeysError(
                f"the key command did not answer within {COMMAND_TIMEOUT:.0f} s",
                code="keys.command_failed",
                source=self.describe(),
            ) from None
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
            raise KeysError(
                f"the key command failed (exit {done.returncode}): {tail or 'no message'}",
                code="keys.command_failed",
                source=self.describe(),
            )
        return parse_key(done.stdout, "the key command's output")
