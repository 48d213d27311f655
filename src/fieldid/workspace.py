"""A workspace: one folder holding the configuration and the vector index, one database, and the
composition root that builds every service once with what it uses.

::

    W/fieldid.toml    configuration (purposes, pipeline, quality gate, search, [database] url)
    W/fieldid.db      SQLite: the default database (PostgreSQL when [database] url says so)
    W/index/          the vector index, derived from the database, caught up when behind
    W/training/       the training gallery (its own SQLite file, or its own PostgreSQL schema)

Biometric data is sealed at rest (``fieldid.store.keys``) under a key-encryption key kept outside
the folder (``[keys]``; by default ``~/.config/fieldid/keys/<workspace id>.key``, created by
:meth:`Workspace.init`); the folder and everything in it is private to its owner (0700/0600,
checked and fixed at every opening: ``fieldid.store.private``). docs/security.md.

Services take what they use (store, gallery, pipeline, calibration, clock); :class:`Workspace` is
the only place that knows how they fit together, and lower layers never import it.

Training mode: the training gallery is kept apart from the real one: its own database (or schema),
index and record tables, filled only with synthetic people by ``fieldid synth --training``. A
training search runs the probe through the main workspace's pipeline and searches *only* the
training gallery; it is audited in the main audit log with ``{"training": true}`` so statistics
leave it out. No code path reads the real gallery in a training search, and a real search never
opens the training one.
"""

from __future__ import annotations

import json
import logging
import os
from functools import cached_property
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL

from fieldid.adjudication.rules import AdjudicationRules
from fieldid.adjudication.service import Adjudicator, DocumentConflicts
from fieldid.audit.config_watch import record_config_if_changed
from fieldid.audit.export import adopt_legacy_key
from fieldid.calibration.store import CalibrationSource
from fieldid.clock import Clock, SystemClock
from fieldid.config import (
    CONFIG_NAME,
    DEFAULT_TOML,
    WorkspaceConfig,
    with_database_url,
    with_model,
)
from fieldid.errors import WorkspaceError
from fieldid.facework import FaceWork
from fieldid.gallery.enroll import Enrollment
from fieldid.gallery.manage import GalleryAdmin
from fieldid.gallery.retemplate import SWITCHED, embedder_settings
from fieldid.gallery.store import EMBEDDER, Gallery, active_generation, gallery_meta
from fieldid.index.faiss_engine import discard_plaintext
from fieldid.index.port import OPERATIONAL, TRAINING
from fieldid.location.config import LocationConfig
from fieldid.pipeline import FacePipeline
from fieldid.records.checks import RecordsConflictChecker, RecordsRecordSource
from fieldid.records.importer import Importer
from fieldid.records.kinds import LEGACY_KEY_FILE
from fieldid.redress.export import Redress
from fieldid.retention.purge import Retention
from fieldid.search.encounter import DocumentEncounters
from fieldid.search.service import SearchService
from fieldid.store import Store, open_store
from fieldid.store.engine import database_url, is_postgres, parse_url, training_url
from fieldid.store.keys import StoreKeys, needs_sealing, open_keys, seal_plaintext
from fieldid.store.private import (
    Fixed,
    check_private,
    make_private_dir,
    private_umask,
    write_private,
)
from fieldid.store.schema import RetemplateJob
from fieldid.template.types import ModelId

log = logging.getLogger(__name__)

INDEX_DIR = "index"
TRAINING_DIR = "training"
TRAINING_MARK = "TRAINING-ONLY.txt"


def _outside(root: Path, url: URL) -> list[Path]:
    """An SQLite database kept outside the workspace folder, with its WAL and SHM files (their
    permissions are checked with the workspace's)."""
    if is_postgres(url) or not url.database:
        return []
    db = Path(url.database).resolve()
    if root.resolve() in db.parents:
        return []
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


class Workspace:
    """A workspace folder and its database, with every service built once (lazily)."""

    def __init__(
        self,
        root: Path,
        config: WorkspaceConfig,
        clock: Clock | None = None,
        *,
        database: str | None = None,
        pipeline: FacePipeline | None = None,
        training: bool = False,
        keys_from: StoreKeys | None = None,
    ) -> None:
        self.root = root
        self.config = config
        #: Every time the workspace records (audit, retention, imports) comes from this clock.
        self.clock: Clock = clock or SystemClock()
        #: A training gallery (``W/training``): synthetic people only, searched only on purpose.
        self.is_training = training
        url = parse_url(database) if database else database_url(root, config.database_url)
        #: What opening made private (files another user could read), if anything.
        self.permission_fixes: list[Fixed] = []
        if keys_from is None:  # a training gallery is inside its workspace, checked with it
            private_umask()
            self.permission_fixes = check_private(root, _outside(root, url))
        self.store: Store = open_store(url, now=self.clock.now)
        self._pipeline = pipeline
        self._training: Workspace | None = None
        self._gallery: Gallery | None = None
        try:
            self.keys: StoreKeys = open_keys(
                self.store,
                config.keys,
                root,
                inherit=keys_from,
                legacy_hash_key=root / LEGACY_KEY_FILE,
            )
            if not training:  # a signing key kept in a file before the keyring moves into it
                adopt_legacy_key(self.keys, root)
            discard_plaintext(root / INDEX_DIR)
            legacy = needs_sealing(self.store)
            if legacy:
                log.warning("sealing biometric data stored in the clear in %s", root)
                seal_plaintext(self.keys)
            if not training:
                self.complete_model_switch()
            record_config_if_changed(self.store, root / CONFIG_NAME)
            if self.permission_fixes:
                self.store.append_audit(
                    "workspace.permissions",
                    operator="system:permissions",
                    payload={
                        "made_private": [str(f) for f in self.permission_fixes[:100]],
                        "count": len(self.permission_fixes),
                    },
                )
            if legacy and not training and (root / TRAINING_DIR / CONFIG_NAME).is_file():
                self.training()  # its gallery was made before encryption too: sealed on opening
        except Exception:
            self.store.close()
            raise

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def init(
        cls, root: str | Path, clock: Clock | None = None, *, database_url: str | None = None
    ) -> Workspace:
        """Create a workspace (the folder may exist but must not hold one already).
        ``database_url``: keep its data in that database (written to ``[database] url``)
        instead of ``W/fieldid.db``."""
        path = Path(root)
        if (path / CONFIG_NAME).exists():
            raise WorkspaceError(
                f"{path} already holds a workspace; open it, or choose another folder",
                code="workspace.exists",
            )
        if path.exists() and not path.is_dir():
            raise WorkspaceError(f"{path} is a file, not a folder", code="workspace.not_a_folder")
        text = DEFAULT_TOML
        if database_url:
            url = parse_url(database_url)  # refused before anything is written
            text = with_database_url(text, url.render_as_string(hide_password=False))
        private_umask()
        make_private_dir(path)
        write_private(path / CONFIG_NAME, text)
        make_private_dir(path / INDEX_DIR)
        try:
            return cls(path, WorkspaceConfig.from_toml(text), clock)
        except Exception:
            (path / CONFIG_NAME).unlink()
            raise

    @classmethod
    def open(cls, root: str | Path, clock: Clock | None = None) -> Workspace:
        path = Path(root)
        if not (path / CONFIG_NAME).is_file():
            raise WorkspaceError(
                f"{path} is not a fieldid workspace (no {CONFIG_NAME}): create one with "
                f"`fieldid init {path}`",
                code="workspace.not_found",
            )
        return cls(
            path,
            WorkspaceConfig.load(path / CONFIG_NAME),
            clock,
            training=(path / TRAINING_MARK).is_file(),
        )

    # -- what it is made of ----------------------------------------------------------------------

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            self._pipeline = FacePipeline.from_spec(self.config.pipeline, limits=self.config.limits)
        return self._pipeline

    @property
    def pipeline_loaded(self) -> bool:
        return self._pipeline is not None

    @property
    def gallery(self) -> Gallery:
        if self._gallery is None:
            embedder = self.pipeline.embedder
            self._gallery = Gallery(
                self.store,
                self.root / INDEX_DIR,
                embedder.model,
                embedder.dim,
                exact_below=self.config.exact_below,
                index=self.config.index,
                name=TRAINING if self.is_training else OPERATIONAL,
            )
        return self._gallery

    @property
    def gallery_loaded(self) -> Gallery | None:
        """The gallery if something already built it (readiness, closing)."""
        return self._gallery

    def document_key(self) -> bytes:
        """The workspace's secret for hashing document numbers (``records.kinds``), held in
        its keyring under the key-encryption key."""
        return self.keys.record_hash_key()

    @property
    def key_created(self) -> Path | None:
        """The key file this opening created (a new workspace's KEK), to tell the user once."""
        return self.keys.created

    @cached_property
    def calibrations(self) -> CalibrationSource:
        return CalibrationSource(self.root, str(self.pipeline.model))

    @cached_property
    def searches(self) -> SearchService:
        """Searches with face work in the calling thread (the CLI, tools, tests)."""
        return self.search_service()

    def search_service(self, faces: FaceWork | None = None) -> SearchService:
        """A search service whose face work runs in ``faces`` (the server's worker pool; None:
        in the calling thread)."""
        return SearchService(
            self.store,
            self.gallery,
            self.pipeline,
            self.calibrations,
            self.config,
            self.clock,
            root=self.root,
            training=self.training,
            faces=faces,
            location=self.location,
        )

    @cached_property
    def location(self) -> LocationConfig:
        """``[location]`` (fieldid.location): off unless configured."""
        return LocationConfig.load(self.root)

    @cached_property
    def documents(self) -> DocumentEncounters:
        """Document checks at an encounter (documents first); chips are verified against the
        CSCA certificates in the workspace's ``csca/`` folder."""
        csca = self.root / "csca"
        return DocumentEncounters(
            self.store,
            self.pipeline,
            self.calibrations,
            self.config,
            self.clock,
            root=self.root,
            csca_folder=csca if csca.is_dir() else None,
            limits=self.config.limits,
        )

    @cached_property
    def enrollment(self) -> Enrollment:
        return Enrollment(self.store, self.gallery, self.pipeline, self.config)

    def enrollment_service(self, faces: FaceWork | None = None) -> Enrollment:
        """Enrollment whose face work runs in ``faces`` (the server's worker pool; None: in the
        calling thread)."""
        return Enrollment(self.store, self.gallery, self.pipeline, self.config, faces=faces)

    @cached_property
    def gallery_admin(self) -> GalleryAdmin:
        """Listing, showing, correcting and deleting people and their images (audited)."""
        return GalleryAdmin(self.store, self.gallery)

    @cached_property
    def importer(self) -> Importer:
        return Importer(self.store, self.root, self.enrollment)

    @cached_property
    def retention(self) -> Retention:
        return Retention(self.store, self.root, self.clock)

    @cached_property
    def conflicts(self) -> DocumentConflicts:
        """Presented documents against a candidate's records (training searches: the training
        gallery's records)."""
        return RecordsConflictChecker(self.store, self.document_key, lambda: self.training().store)

    def adjudicator(self, conflicts: DocumentConflicts | None = None) -> Adjudicator:
        """The adjudication rules of ``[adjudication]`` (read now) over this store."""
        return Adjudicator(
            self.store,
            conflicts=conflicts or self.conflicts,
            rules=AdjudicationRules.load(self.root),
            retention=self.retention.policy(),
        )

    @cached_property
    def redress(self) -> Redress:
        return Redress(self.store, self.clock, RecordsRecordSource(self.store))

    # -- a re-templated gallery ------------------------------------------------------------------

    def complete_model_switch(self, operator: str | None = None) -> bool:
        """Make ``fieldid.toml`` name the model the gallery was switched to by a re-templating
        (``gallery/retemplate.py``), if it still names the model the gallery was moved from: the
        switch commits in the database first and the file follows, so a crash in between is
        completed here. ``operator``: record the change in the audit log as theirs (else the
        next opening records it as observed). Returns whether the file was rewritten."""
        path = self.root / CONFIG_NAME
        if not path.is_file():
            return False
        with self.store.read() as s:
            meta = gallery_meta(s)
            if EMBEDDER not in meta:
                return False
            wanted = json.loads(meta[EMBEDDER])
            job = s.scalars(
                select(RetemplateJob).where(
                    RetemplateJob.state == SWITCHED,
                    RetemplateJob.generation == active_generation(meta),
                )
            ).one_or_none()
        now = embedder_settings(self.config.pipeline)
        if job is None or now == wanted or now != job.options.get("from_embedder"):
            return False  # already done, or another model named by hand: the gallery says so
        text = with_model(
            path.read_text(encoding="utf-8"),
            wanted,
            threshold=job.options.get("threshold"),
            why=f"a score of {job.from_model}; the gallery moved to {job.to_model} "
            f"(re-templating job {job.id})",
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        self.config = WorkspaceConfig.from_toml(text, str(path))
        if operator is not None:
            record_config_if_changed(self.store, path, operator)
        return True

    def follow_model(self) -> bool:
        """When a re-templating in another process has switched the gallery to another model
        since this workspace built its gallery, build the pipeline, gallery and services again
        for the new model (the configuration is read again). A long-running process (the
        server) calls this before each use of the face pipeline. Returns whether it did."""
        gallery = self._gallery
        if gallery is None:
            return False
        with self.store.read() as s:
            if active_generation(gallery_meta(s)) == gallery.generation:
                return False
        self.complete_model_switch()
        self.config = WorkspaceConfig.load(self.root / CONFIG_NAME)
        record_config_if_changed(self.store, self.root / CONFIG_NAME)
        if self._training is not None:
            self._training.close()
            self._training = None
        # The old gallery's index is dropped unsaved: the new model's is on disk.
        self._pipeline = None
        self._gallery = None
        for name in ("calibrations", "searches", "enrollment", "importer", "conflicts"):
            self.__dict__.pop(name, None)
        return True

    def bound_gallery(self, *, training: bool = False) -> Gallery | None:
        """The gallery (or the training gallery, in its own store: close it when done) opened on
        the model its database is bound to, whatever the configuration names: what a
        re-templating moves. None when there is no such gallery, or it was never bound."""
        root = self.root / TRAINING_DIR if training else self.root
        if not (root / CONFIG_NAME).is_file():
            return None
        store = self.store
        if training:
            store = open_store(training_url(self.store.url, root), now=self.clock.now)
            try:  # sealed under this workspace's keys, as Workspace.training() opens it
                open_keys(
                    store,
                    self.config.keys,
                    root,
                    inherit=self.keys,
                    legacy_hash_key=root / LEGACY_KEY_FILE,
                )
            except Exception:
                store.close()
                raise
        with store.read() as s:
            meta = gallery_meta(s)
        if "model_id" not in meta:
            if training:
                store.close()
            return None
        return Gallery(
            store,
            root / INDEX_DIR,
            ModelId(meta["model_id"], meta["model_version"]),
            int(meta["dim"]),
            exact_below=self.config.exact_below,
        )

    # -- the training gallery --------------------------------------------------------------------

    def training(self, *, create: bool = False) -> Workspace:
        """The training gallery beside this workspace (same configuration and pipeline object;
        its own database or schema, index and records). Raises ``training.absent`` when it does
        not exist and ``create`` is false."""
        if self._training is not None:
            return self._training
        root = self.root / TRAINING_DIR
        if not (root / CONFIG_NAME).is_file():
            if not create:
                raise WorkspaceError(
                    f"this workspace has no training gallery ({root}): make one with "
                    f"`fieldid synth --workspace {self.root} --training`",
                    code="training.absent",
                )
            make_private_dir(root)
            write_private(root / CONFIG_NAME, (self.root / CONFIG_NAME).read_text(encoding="utf-8"))
            make_private_dir(root / INDEX_DIR)
            write_private(
                root / TRAINING_MARK,
                "Training gallery: synthetic people and records only. Never enrol real data "
                "here.\n",
            )
        url = training_url(self.store.url, root)
        self._training = Workspace(
            root,
            self.config,
            self.clock,
            database=url.render_as_string(hide_password=False),
            pipeline=self.pipeline,
            training=True,
            keys_from=self.keys,
        )
        return self._training

    # -- closing -----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._training is not None:
            self._training.close()
            self._training = None
        if self._gallery is not None:
            self._gallery.close()
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
