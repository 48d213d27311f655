"""Which key-encryption key a workspace uses: ``[keys]`` in fieldid.toml, the environment, or
the default file.

In order, the first that is set wins:

1. ``FIELDID_KEK`` — the key itself (base64 or hex), e.g. injected by a secrets manager;
2. ``FIELDID_KEK_FILE`` — a key file;
3. ``FIELDID_KEK_COMMAND`` — a command that prints the key (a KMS or HSM client);
4. ``[keys]`` in fieldid.toml: ``file = "…"``, ``env = "VAR"`` or ``command = "…"`` (one of them);
5. the default file ``<key dir>/<workspace id>.key``, where the key dir is ``FIELDID_KEY_DIR``,
   else ``$XDG_CONFIG_HOME/fieldid/keys``, else ``~/.config/fieldid/keys``. ``fieldid init``
   creates it (mode 0600 in a 0700 folder) when nothing else is configured.

A key file inside the workspace is refused: the key must not travel with the data it protects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldid.keys.errors import KeysError
from fieldid.keys.kek import CommandKek, EnvKek, FileKek, KekSource

ENV_KEY = "FIELDID_KEK"
ENV_FILE = "FIELDID_KEK_FILE"
ENV_COMMAND = "FIELDID_KEK_COMMAND"
ENV_DIR = "FIELDID_KEY_DIR"


@dataclass(frozen=True)
class KeysSpec:
    """``[keys]`` of fieldid.toml: at most one of ``file``, ``env``, ``command``."""

    file: str | None = None
    env: str | None = None
    command: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeysSpec:
        unknown = set(d) - {"file", "env", "command"}
        if unknown:
            raise ValueError(f"[keys] has unknown settings: {', '.join(sorted(unknown))}")
        spec = cls(**{k: (str(v).strip() or None) for k, v in d.items()})
        if sum(x is not None for x in (spec.file, spec.env, spec.command)) > 1:
            raise ValueError(
                "[keys] names more than one key source: keep one of file, env, command"
            )
        return spec

    @property
    def empty(self) -> bool:
        return self.file is None and self.env is None and self.command is None


def key_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where default key files live (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_DIR):
        return Path(env[ENV_DIR]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "fieldid" / "keys"


def default_file(workspace_id: str, environ: Mapping[str, str] | None = None) -> FileKek:
    return FileKek(key_dir(environ) / f"{workspace_id}.key")


def resolve(
    spec: KeysSpec,
    workspace_id: str,
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[KekSource, bool]:
    """The KEK source in force and whether it is the default file (see the module docstring).
    ``root``: the workspace folder (a key file inside it is refused)."""
    env = os.environ if environ is None else environ
    source: KekSource
    default = False
    if env.get(ENV_KEY):
        source = EnvKek(ENV_KEY, env)
    elif env.get(ENV_FILE):
        source = FileKek(Path(env[ENV_FILE]))
    elif env.get(ENV_COMMAND):
        source = CommandKek(env[ENV_COMMAND])
    elif spec.file:
        source = FileKek(Path(spec.file))
    elif spec.env:
        source = EnvKek(spec.env, env)
    elif spec.command:
        source = CommandKek(spec.command)
    else:
        source, default = default_file(workspace_id, env), True
    if isinstance(source, FileKek) and root is not None:
        inside(source.path, root)
    return source, default


def inside(path: Path, root: Path) -> None:
    """Refuse a key file inside the workspace folder ``root``."""
    try:
        p = path.expanduser().resolve()
        r = root.resolve()
    except OSError:
        return
    if p == r or r in p.parents:
        raise KeysError(
            f"the key file {path} is inside the workspace {root}: a key kept with the data it "
            "protects protects nothing. Move it out (e.g. to ~/.config/fieldid/keys/) and set "
            "[keys] file",
            code="keys.inside_workspace",
        )
