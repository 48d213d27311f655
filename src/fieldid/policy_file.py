"""Reading one section of the workspace's ``fieldid.toml`` for the policies that live beside the
core configuration (``[adjudication]``, ``[retention]``), each validated by its own module."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from fieldid.config import CONFIG_NAME
from fieldid.errors import WorkspaceError


def read_section(root: Path, name: str) -> dict[str, Any]:
    """The ``[name]`` table of ``root/fieldid.toml`` ({} when the file has none)."""
    path = root / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise WorkspaceError(f"{path} is missing", code="workspace.not_found") from e
    except tomllib.TOMLDecodeError as e:
        raise WorkspaceError(f"{path} is not valid TOML: {e}", code="config.syntax") from e
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise WorkspaceError(f"{path}: [{name}] must be a table", code="config.invalid")
    return section
