"""A workspace no other user can read: files 0600, folders 0700, whatever the umask.

Three things hold it:

1. :func:`private_umask` sets the process's umask to 077 when a workspace is opened, so every
   file anything in the process creates from then on (SQLite's WAL and SHM, the vector index,
   exports, PIA files, reports) is private from its first byte;
2. files fieldid creates itself are created with explicit modes (key files, the SQLite file);
3. :func:`check_private`, run at every opening, walks the workspace and makes private any file
   or folder that another user could read, write or enter, saying what it changed. What it
   cannot change (an entry owned by another user) is refused with ``workspace.permissions``.

Symbolic links are not followed (their targets are not the workspace's to change), and they are
reported. PostgreSQL's files are the server's: its own permissions and TLS apply
(docs/deploy-postgresql.md).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from fieldid.errors import WorkspaceError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077


@dataclass(frozen=True)
class Fixed:
    path: str
    was: int
    now: int

    def __str__(self) -> str:
        return f"{self.path} ({self.was:04o} -> {self.now:04o})"


def private_umask() -> int:
    """Set the process umask to 077; returns the one it replaces."""
    return os.umask(UMASK)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and its missing parents inside it) as 0700."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (created or replaced) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def check_private(root: Path, extra: list[Path] | None = None, *, fix: bool = True) -> list[Fixed]:
    """Make ``root`` and everything in it (and ``extra`` files, e.g. an SQLite database kept
    elsewhere, with its ``-wal`` and ``-shm``) private; return what was changed. ``fix=False``
    refuses instead of changing anything."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    fixed: list[Fixed] = []
    problems: list[str] = []

    def visit(p: Path, st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if not mode & 0o077:
            return
        want = (mode & 0o700) | (DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE)
        if me is not None and st.st_uid != me:
            problems.append(f"{p} (mode {mode:04o}, owned by uid {st.st_uid})")
            return
        if not fix:
            problems.append(f"{p} (mode {mode:04o})")
            return
        os.chmod(p, want)
        fixed.append(Fixed(str(p), mode, want))

    def walk(d: Path) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError as e:
            problems.append(f"{d} ({e.strerror})")
            return
        for entry in entries:
            p = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                log.warning("%s is a symbolic link: its target's permissions are not checked", p)
                continue
            visit(p, st)
            if stat.S_ISDIR(st.st_mode):
                walk(p)

    visit(root, root.stat())
    walk(root)
    for p in extra or []:
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        visit(p, st)
    if problems:
        raise WorkspaceError(
            f"the workspace {root} can be read by other users and fieldid cannot change it: "
            + "; ".join(problems[:10])
            + ". Make these private (files 0600, folders 0700) as their owner, then open the "
            "workspace again",
            code="workspace.permissions",
            paths=problems,
        )
    if fixed:
        log.warning(
            "made %d entries of the workspace %s private (they could be read by other users): %s",
            len(fixed),
            root,
            ", ".join(str(f) for f in fixed[:10]) + (" …" if len(fixed) > 10 else ""),
        )
    return fixed
