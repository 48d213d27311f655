"""Keys for biometric data at rest: a key-encryption key held outside the workspace, and the
envelope encryption it wraps.

- :mod:`fieldid.keys.kek`: the port (:class:`KekSource`) and its adapters (file, environment
  variable, command), key fingerprints;
- :mod:`fieldid.keys.sources`: which source a workspace uses (``[keys]``, ``FIELDID_KEK*``, the
  default file);
- :mod:`fieldid.keys.envelope`: :class:`Keyring`, records sealed under per-record data keys;
- :mod:`fieldid.keys.files`: sealed files in authenticated segments (the vector index on disk,
  document images).

No database here: which columns are sealed, and the keyring's rows, are the storage kernel's
(``fieldid.store.keys``). See docs/security.md.
"""

from fieldid.keys.envelope import Keyring, is_sealed
from fieldid.keys.errors import KeysError
from fieldid.keys.kek import CommandKek, EnvKek, FileKek, KekSource, fingerprint
from fieldid.keys.sources import KeysSpec

__all__ = [
    "CommandKek",
    "EnvKek",
    "FileKek",
    "KekSource",
    "Keyring",
    "KeysError",
    "KeysSpec",
    "fingerprint",
    "is_sealed",
]
