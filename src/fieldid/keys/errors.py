"""The error every key problem raises (codes ``keys.*``)."""

from __future__ import annotations

from fieldid.errors import FieldidError


class KeysError(FieldidError):
    """A key cannot be had, is the wrong one, or a sealed record does not open. Codes:
    ``keys.missing``, ``keys.unreadable``, ``keys.file_mode``, ``keys.file_owner``,
    ``keys.bad_material``, ``keys.bad_source``, ``keys.command_failed``, ``keys.wrong_key``,
    ``keys.unknown_kek``, ``keys.tampered``, ``keys.not_sealed``, ``keys.inside_workspace``,
    ``keys.rotation``, ``keys.none``."""

    code = "keys.error"
