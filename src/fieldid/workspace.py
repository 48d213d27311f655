"""A workspace: one folder holding the configuration, the database and the vector index.

::

    W/fieldid.toml    configuration (purposes, pipeline, quality gate, search)
    W/fieldid.db      SQLite: people, images, templates, audit log (Alembic-managed schema)
    W/index/          the vector index, derived from the database and rebuilt when stale
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from fieldid.audit.config_watch import record_config_if_changed
from fieldid.audit.log import SqlAuditLog
from fieldid.clock import Clock, SystemClock
from fieldid.config import CONFIG_NAME, DEFAULT_TOML, WorkspaceConfig
from fieldid.errors import WorkspaceError
from fieldid.gallery import db
from fieldid.gallery.store import Gallery
from fieldid.pipeline import FacePipeline

DB_NAME = "fieldid.db"
INDEX_DIR = "index"


class Workspace:
    def __init__(self, root: Path, config: WorkspaceConfig, clock: Clock | None = None) -> None:
        self.root = root
        self.config = config
        #: Every time the workspace records (audit, retention, imports) comes from this clock.
        self.clock: Clock = clock or SystemClock()
        self.engine = db.make_engine(root / DB_NAME)
        db.upgrade(self.engine)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.audit = SqlAuditLog(self.sessions, self.clock.now)
        record_config_if_changed(self.audit, root / CONFIG_NAME)

    @classmethod
    def init(cls, root: str | Path, clock: Clock | None = None) -> Workspace:
        """Create a workspace (the folder may exist but must not hold one already)."""
        path = Path(root)
        if (path / CONFIG_NAME).exists():
            raise WorkspaceError(
                f"{path} already holds a workspace; open it, or choose another folder",
                code="workspace.exists",
            )
        if path.exists() and not path.is_dir():
            raise WorkspaceError(f"{path} is a file, not a folder", code="workspace.not_a_folder")
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(DEFAULT_TOML, encoding="utf-8")
        (path / INDEX_DIR).mkdir(exist_ok=True)
        return cls(path, WorkspaceConfig.from_toml(DEFAULT_TOML), clock)

    @classmethod
    def open(cls, root: str | Path, clock: Clock | None = None) -> Workspace:
        path = Path(root)
        if not (path / CONFIG_NAME).is_file():
            raise WorkspaceError(
                f"{path} is not a fieldid workspace (no {CONFIG_NAME}): create one with "
                f"`fieldid init {path}`",
                code="workspace.not_found",
            )
        return cls(path, WorkspaceConfig.load(path / CONFIG_NAME), clock)

    @cached_property
    def pipeline(self) -> FacePipeline:
        return FacePipeline.from_spec(self.config.pipeline, limits=self.config.limits)

    @cached_property
    def gallery(self) -> Gallery:
        embedder = self.pipeline.embedder
        return Gallery(
            self.sessions,
            self.root / INDEX_DIR,
            embedder.model,
            embedder.dim,
            exact_below=self.config.exact_below,
        )

    def close(self) -> None:
        if "gallery" in self.__dict__:
            self.gallery.flush()
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
