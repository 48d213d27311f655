"""Biometric data at rest: which columns are sealed, the store's keyring, and the passes over
every sealed record (seal what was stored in the clear, re-wrap under a new KEK, check).

Contract:

1. A biometric value is written sealed (:func:`seal`) and read through :func:`unseal`, in a
   session of the store (its ``info`` names the store, whose :attr:`~fieldid.store.Store.keys`
   does the work). Nothing else reads or writes these columns' bytes.
2. A sealed value is bound to its column and its row (``templates.vector:42``): the row's id
   must exist before the value is sealed (flush first, then seal; a copy of the database keeps
   ids, so values stay bound).
3. The columns are listed in :data:`SEALED`; a new biometric column is one line there
   (:func:`register`, e.g. the documents integration's images) and every pass below covers it.
4. The key-encryption key comes from outside the workspace (``fieldid.keys.sources``); the
   ``keyring`` table holds only facts about it and keys wrapped by it.

Passes, each in batches of its own transactions so that an interrupted run loses nothing and
resumes where it stopped: :func:`seal_plaintext` (values stored before encryption),
:func:`rotate` (data keys re-wrapped under a new KEK; the data is not encrypted again),
:func:`check` (every value opens).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from fieldid.keys.envelope import MAGIC, Keyring, is_sealed, wrapped_by
from fieldid.keys.errors import KeysError
from fieldid.keys.kek import CommandKek, EnvKek, FileKek, KekSource, fingerprint, new_key
from fieldid.keys.sources import KeysSpec, resolve
from fieldid.store import STORE_INFO
from fieldid.store.schema import Base, KeyringEntry

if TYPE_CHECKING:
    from fieldid.store import Store

log = logging.getLogger(__name__)

KEK_ROW = "kek"
RECORD_HASH_ROW = "record-hash"
ROTATION_ROW = "rotation"
#: Rows sealed, re-wrapped or checked per transaction (each a unit of work with its audit entry).
BATCH = 5_000
#: The operator named in the audit entries the keyring writes itself.
OPERATOR = "system:keys"


@dataclass(frozen=True)
class SealedColumn:
    """A column that holds one biometric value per row, sealed and bound to the row's ``key``."""

    table: str
    column: str
    key: str
    #: What the values are, in words.
    what: str

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}"

    def aad(self, row_id: int | str) -> bytes:
        return f"{self.label}:{row_id}".encode()

    def columns(self) -> tuple[Any, Any]:
        t: Table = Base.metadata.tables[self.table]
        return t.c[self.key], t.c[self.column]


TEMPLATE_VECTOR = SealedColumn("templates", "vector", "id", "gallery templates")
THUMBNAIL = SealedColumn("enrollment_images", "thumbnail", "id", "enrolled face crops")
PROBE_IMAGE = SealedColumn("probes", "image", "search_id", "probe photos")
PROBE_TEMPLATE = SealedColumn("probes", "template", "search_id", "probe templates")
DOCUMENT_IMAGE = SealedColumn(
    "document_checks", "document_image", "id", "identity-document data page photos"
)
CHIP_DATA = SealedColumn("document_checks", "chip_data", "id", "identity-document chip data")
ENROLLMENT_PIXELS = SealedColumn(
    "enrollment_pixels", "data", "image_id", "enrolled face images (pixels kept for re-templating)"
)
#: Every sealed column (the passes and the tests cover exactly these).
SEALED: list[SealedColumn] = [
    TEMPLATE_VECTOR,
    THUMBNAIL,
    PROBE_IMAGE,
    PROBE_TEMPLATE,
    DOCUMENT_IMAGE,
    CHIP_DATA,
    ENROLLMENT_PIXELS,
]


def register(col: SealedColumn) -> SealedColumn:
    """Add a biometric column (its table must be in the schema): seal it with :func:`seal`,
    read it with :func:`unseal`; ``fieldid keys`` init/rotate/check cover it from then on."""
    if col.table not in Base.metadata.tables:
        raise ValueError(f"no table {col.table!r} in the schema")
    if col not in SEALED:
        SEALED.append(col)
    return col


# -- the store's keys ---------------------------------------------------------------------------


@dataclass
class StoreKeys:
    """The keyring of one store: seals and opens its biometric values, holds its record-hash
    key. Built by :func:`open_keys`; reached from a session by :func:`keys_of`."""

    store: Store
    keyring: Keyring
    workspace_id: str
    #: Where the KEK came from, in words (never the key).
    source: str
    #: The default key file, if ``open_keys`` created it now.
    created: Path | None = None
    _hash_key: bytes | None = field(default=None, repr=False)

    @property
    def kek_id(self) -> str:
        return self.keyring.kek_id

    def seal(self, col: SealedColumn, row_id: int, data: bytes | memoryview) -> bytes:
        return self.keyring.seal(data, col.aad(row_id))

    def open(self, col: SealedColumn, row_id: int, blob: bytes | memoryview) -> bytes:
        return self.keyring.open(blob, col.aad(row_id))

    def record_hash_key(self) -> bytes:
        """The HMAC key for identity-document numbers (``records.kinds``)."""
        if self._hash_key is None:
            with self.store.read() as s:
                row = s.get(KeyringEntry, RECORD_HASH_ROW)
            if row is None or row.wrapped is None:
                raise KeysError("this workspace's keyring has no record-hash key", code="keys.none")
            self._hash_key = self.keyring.unwrap_key(row.wrapped, RECORD_HASH_ROW)
        return self._hash_key


def named_key(keys: StoreKeys, name: str) -> bytes | None:
    """The secret kept in ``keys``' keyring under ``name`` (wrapped by the KEK), or None."""
    if name in (KEK_ROW, ROTATION_ROW):
        raise ValueError(f"{name!r} is not a named key")
    with keys.store.read() as s:
        row = s.get(KeyringEntry, name)
    if row is None or row.wrapped is None:
        return None
    return keys.keyring.unwrap_key(row.wrapped, name)


def put_named_key(
    keys: StoreKeys,
    name: str,
    value: bytes,
    *,
    detail: dict[str, Any] | None = None,
    operator: str = OPERATOR,
) -> bytes:
    """Keep ``value`` in the keyring under ``name``, wrapped by the KEK (rotated and checked
    with the rest), with an audit entry naming it (never the value). If the keyring holds a key
    of that name already (another process was first), that one stays and is returned."""
    from sqlalchemy.exc import IntegrityError

    if name in (KEK_ROW, ROTATION_ROW):
        raise ValueError(f"{name!r} is not a named key")
    try:
        with keys.store.unit_of_work() as uow:
            s = uow.session
            if _row(s, name) is None:
                s.add(
                    KeyringEntry(
                        name=name,
                        kek_id=keys.kek_id,
                        wrapped=keys.keyring.wrap_key(value, name),
                        detail=dict(detail or {}),
                        updated_at=uow.now(),
                    )
                )
                s.flush()
                uow.audit(
                    "keys.named",
                    operator=operator,
                    payload={"name": name, "kek": keys.kek_id, **(detail or {})},
                )
    except IntegrityError:
        pass
    kept = named_key(keys, name)
    assert kept is not None
    return kept


def store_keys(store: Store) -> StoreKeys:
    """``store.keys``, or ``keys.none`` when the store was opened without them."""
    if store.keys is None:
        raise KeysError(
            "this database was opened without its workspace's keys (open it through its "
            "workspace: biometric data is sealed)",
            code="keys.none",
        )
    return store.keys


def record_hash_key(store: Store) -> bytes:
    """The HMAC key for identity-document numbers of ``store`` (``records.kinds``)."""
    return store_keys(store).record_hash_key()


def keys_of(session: Session) -> StoreKeys:
    """The keys of the store ``session`` belongs to."""
    store = session.info.get(STORE_INFO)
    if store is None:
        raise KeysError("this session does not belong to a store", code="keys.none")
    return store_keys(store)


def seal(session: Session, col: SealedColumn, row_id: int, data: bytes | memoryview) -> bytes:
    """``data`` sealed for ``col`` of row ``row_id``, with the keys of ``session``'s store."""
    return keys_of(session).seal(col, row_id, data)


def unseal(session: Session, col: SealedColumn, row_id: int, blob: bytes | memoryview) -> bytes:
    """The value sealed in ``blob`` for ``col`` of row ``row_id``."""
    return keys_of(session).open(col, row_id, blob)


# -- opening: the KEK, the keyring rows ----------------------------------------------------------


def source_record(source: KekSource) -> dict[str, str]:
    """Where a KEK comes from, as a row records it (never the key)."""
    if isinstance(source, FileKek):
        return {"kind": "file", "value": str(source.path)}
    if isinstance(source, EnvKek):
        return {"kind": "env", "value": source.var}
    if isinstance(source, CommandKek):
        return {"kind": "command", "value": " ".join(source.argv)}
    return {"kind": "other", "value": source.describe()}


def source_from_record(rec: dict[str, Any] | None) -> KekSource | None:
    if not rec:
        return None
    kind, value = rec.get("kind"), str(rec.get("value") or "")
    if kind == "file":
        return FileKek(Path(value))
    if kind == "env":
        return EnvKek(value)
    if kind == "command":
        return CommandKek(value)
    return None


def _row(s: Session, name: str) -> KeyringEntry | None:
    return s.get(KeyringEntry, name)


def facts(store: Store) -> dict[str, Any] | None:
    """The ``kek`` row (workspace id, KEK fingerprint, …), or None before the keyring exists."""
    with store.read() as s:
        row = _row(s, KEK_ROW)
        rot = _row(s, ROTATION_ROW)
        if row is None:
            return None
        out = {**row.detail, "kek_id": row.kek_id}
        if rot is not None:
            out["rotation"] = {**rot.detail, "kek_id": rot.kek_id}
        return out


def _missing(e: KeysError, source: KekSource, workspace_id: str, kek_id: str | None) -> KeysError:
    which = f" (fingerprint {kek_id})" if kek_id else ""
    return KeysError(
        f"this workspace's biometric data is sealed under its key-encryption key{which}, "
        f"expected from {source.describe()}: {e.message}. Restore the key from your backup, "
        "or say where it is ([keys] in fieldid.toml, FIELDID_KEK_FILE, FIELDID_KEK or "
        "FIELDID_KEK_COMMAND; docs/security.md). Without it the workspace's faces, templates "
        "and document-number hashes cannot be used.",
        code=e.code,
        workspace_id=workspace_id,
        expected_kek=kek_id,
        source=source.describe(),
    )


def open_keys(
    store: Store,
    spec: KeysSpec,
    root: Path | None,
    *,
    kek: KekSource | None = None,
    inherit: StoreKeys | None = None,
    legacy_hash_key: Path | None = None,
) -> StoreKeys:
    """The store's keys, installed as ``store.keys``.

    A store without a keyring (a new workspace, or one made before encryption) gets one: a
    workspace id, its KEK (``kek``, else the source ``spec`` resolves to; the default key file
    is created if absent), and a record-hash key (the one in ``legacy_hash_key`` if that file
    exists, so hashes already stored still compare; the file is removed once the key is in the
    keyring). A store with one needs the KEK its data keys are wrapped by: a missing or
    different key is refused with ``keys.missing`` / ``keys.wrong_key``, never replaced.
    ``inherit``: the keys of the workspace this store belongs to (its training gallery)."""
    known = facts(store)
    if known is None:
        _refuse_orphans(store)
    if inherit is not None:
        keys = _inherit(store, inherit, known, legacy_hash_key)
    elif known is None:
        wsid = uuid.uuid4().hex
        source = kek
        created: Path | None = None
        if source is None:
            source, default = resolve(spec, wsid, root)
            if default and isinstance(source, FileKek) and not source.exists():
                source.create()
                created = source.path
        key = source.load()
        try:
            keys = _create_rows(
                store,
                Keyring(key),
                wsid,
                source_record(source),
                source.describe(),
                legacy_hash_key,
            )
        except Exception:
            if created is not None:
                created.unlink(missing_ok=True)
            raise
        if keys.workspace_id != wsid:  # another process made the keyring first: use it
            if created is not None:
                created.unlink(missing_ok=True)
            store.keys = None
            return open_keys(store, spec, root, kek=kek, legacy_hash_key=legacy_hash_key)
        keys.created = created
    else:
        keys = _open_existing(store, spec, root, known, kek)
    if legacy_hash_key is not None:
        _retire_legacy_hash_key(keys, legacy_hash_key)
    return keys


def _refuse_orphans(store: Store) -> None:
    """A database without a keyring must hold nothing sealed: sealed values whose keyring is
    gone are never given a new key (they could not be opened by it)."""
    with store.read() as s:
        for col in SEALED:
            c = col.columns()[1]
            blob = s.scalar(select(c).where(c.is_not(None), ~_plain(c)).limit(1))
            if blob is not None:
                raise KeysError(
                    f"this database holds biometric data sealed under the key "
                    f"{wrapped_by(bytes(blob))}, but its keyring (table keyring) is empty or "
                    "gone: restore the database from a backup taken with its keyring. fieldid "
                    "does not make a new key for it: data sealed under the old one could never "
                    "be read again",
                    code="keys.keyring_missing",
                    column=col.label,
                )


def _inherit(
    store: Store, parent: StoreKeys, known: dict[str, Any] | None, legacy: Path | None
) -> StoreKeys:
    if known is None:
        parent_facts = facts(parent.store) or {}
        return _create_rows(
            store,
            parent.keyring,
            parent.workspace_id,
            dict(parent_facts.get("source") or {}),
            parent.source,
            legacy,
        )
    if str(known["kek_id"]) not in parent.keyring.kek_ids:
        raise KeysError(
            f"this gallery's keys are wrapped by {known['kek_id']}, not by its workspace's key "
            f"({parent.kek_id})",
            code="keys.wrong_key",
        )
    keys = StoreKeys(store, parent.keyring, str(known["workspace_id"]), parent.source)
    store.keys = keys
    return keys


def _create_rows(
    store: Store,
    keyring: Keyring,
    wsid: str,
    source_rec: dict[str, Any],
    source_desc: str,
    legacy: Path | None,
) -> StoreKeys:
    imported = legacy is not None and legacy.is_file()
    hash_key = legacy.read_bytes() if legacy is not None and imported else new_key()
    from sqlalchemy.exc import IntegrityError

    try:
        with store.unit_of_work() as uow:
            s = uow.session
            existing = _row(s, KEK_ROW)
            if existing is None:
                has_data = any(
                    s.scalar(select(col.columns()[1]).where(col.columns()[1].is_not(None)).limit(1))
                    is not None
                    for col in SEALED
                )
                now = uow.now()
                s.add(
                    KeyringEntry(
                        name=KEK_ROW,
                        kek_id=keyring.kek_id,
                        wrapped=None,
                        detail={
                            "workspace_id": wsid,
                            "source": source_rec,
                            # nothing stored yet: nothing to seal
                            "sealed_at": None if has_data else now.isoformat(),
                        },
                        updated_at=now,
                    )
                )
                if _row(s, RECORD_HASH_ROW) is None:
                    s.add(
                        KeyringEntry(
                            name=RECORD_HASH_ROW,
                            kek_id=keyring.kek_id,
                            wrapped=keyring.wrap_key(hash_key, RECORD_HASH_ROW),
                            detail={"imported_from_file": imported},
                            updated_at=now,
                        )
                    )
                s.flush()
                uow.audit(
                    "keys.init",
                    operator=OPERATOR,
                    payload={
                        "kek": keyring.kek_id,
                        "source": source_desc,
                        "workspace_id": wsid,
                        "record_hash_key": "imported" if imported else "new",
                    },
                )
            else:
                wsid = str(existing.detail.get("workspace_id"))
    except IntegrityError:  # another process created it at the same moment
        known = facts(store)
        assert known is not None
        wsid = str(known["workspace_id"])
    keys = StoreKeys(store, keyring, wsid, source_desc)
    store.keys = keys
    return keys


def _open_existing(
    store: Store,
    spec: KeysSpec,
    root: Path | None,
    known: dict[str, Any],
    kek: KekSource | None,
) -> StoreKeys:
    wsid = str(known["workspace_id"])
    want = str(known["kek_id"])
    rotation = known.get("rotation")
    source = kek or resolve(spec, wsid, root)[0]
    try:
        key = source.load()
    except KeysError as e:
        raise _missing(e, source, wsid, want) from e
    fp = fingerprint(key)
    keys_by_id = {fp: key}
    # During a rotation both keys are needed: the one the rows record and the new one.
    wanted = {want} | ({str(rotation["kek_id"])} if rotation else set())
    if fp not in wanted:
        recorded = source_from_record(known.get("source"))
        hint = (
            f" (the keyring records it as {recorded.describe()})"
            if recorded is not None and recorded.describe() != source.describe()
            else ""
        )
        raise KeysError(
            f"the key from {source.describe()} (fingerprint {fp}) is not this workspace's "
            f"key-encryption key (fingerprint {want}){hint}: point [keys] or FIELDID_KEK* at "
            "the right key",
            code="keys.wrong_key",
            workspace_id=wsid,
            expected_kek=want,
            found_kek=fp,
        )
    for other_id in wanted - {fp}:
        rec = known.get("source") if other_id == want else (rotation or {}).get("source")
        other = source_from_record(rec)
        try:
            if other is None:
                raise KeysError("its source is not recorded", code="keys.missing")
            other_key = other.load()
        except KeysError as e:
            raise KeysError(
                f"a key rotation from {want} to {rotation and rotation['kek_id']} was "
                f"interrupted, and the key {other_id} it needs cannot be loaded "
                f"({e.message}): make it available, then finish with `fieldid keys rotate "
                "--resume`",
                code="keys.rotation",
            ) from e
        if fingerprint(other_key) != other_id:
            raise KeysError(
                f"the key recorded for {other_id} has changed: restore it, then finish the "
                "rotation with `fieldid keys rotate --resume`",
                code="keys.rotation",
            )
        keys_by_id[other_id] = other_key
    current = str(rotation["kek_id"]) if rotation else want
    keyring = Keyring(
        keys_by_id[current], others=[k for i, k in keys_by_id.items() if i != current]
    )
    keys = StoreKeys(store, keyring, wsid, source.describe())
    store.keys = keys
    return keys


def _retire_legacy_hash_key(keys: StoreKeys, legacy: Path) -> None:
    """Remove the record-hash key file of a workspace made before the keyring, once the keyring
    holds the same key (overwritten, then deleted)."""
    if not legacy.is_file():
        return
    old = legacy.read_bytes()
    if old != keys.record_hash_key():
        log.warning("%s is not the keyring's record-hash key and is not used: delete it", legacy)
        return
    with open(legacy, "r+b") as f:
        f.write(b"\0" * len(old))
        f.flush()
        os.fsync(f.fileno())
    legacy.unlink()
    with contextlib.suppress(OSError):  # other files there: leave the folder
        legacy.parent.rmdir()
    log.info("the record-hash key moved from %s into the keyring", legacy)


# -- passes over every sealed value --------------------------------------------------------------

Progress = Callable[[str, int, int], None]


def _plain(col: Any) -> Any:
    return func.substr(col, 1, len(MAGIC)) != MAGIC


def _not_under(col: Any, kek_id: str) -> Any:
    return func.substr(col, 6, 8) != bytes.fromhex(kek_id)


def _count(store: Store, col: SealedColumn, *where: Any) -> int:
    _pk, c = col.columns()
    with store.read() as s:
        return int(s.scalar(select(func.count()).where(c.is_not(None), *where)) or 0)


def _batches(
    store: Store, col: SealedColumn, *where: Any, write: bool = True
) -> Iterator[tuple[Any, list[tuple[Any, bytes]]]]:
    """(unit of work, rows) of ``col`` matching ``where``, in key order, one transaction per
    batch: a unit of work when ``write`` (committed when the caller's loop moves on; rolled
    back if the loop stops with an exception), else a read."""
    pk, c = col.columns()
    last: Any = None
    while True:
        with store.unit_of_work() if write else _reading(store) as uow:
            q = select(pk, c).where(c.is_not(None), *where).order_by(pk).limit(BATCH)
            if last is not None:
                q = q.where(pk > last)
            if write and store.backend == "postgresql":
                q = q.with_for_update()
            rows = [(r[0], bytes(r[1])) for r in uow.session.execute(q)]
            if not rows:
                return
            yield uow, rows
            last = rows[-1][0]


class _reading:
    """A read of ``store`` shaped like a unit of work (``.session``)."""

    def __init__(self, store: Store) -> None:
        self._cm = store.read()

    def __enter__(self) -> _reading:
        self.session = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def _set(s: Session, col: SealedColumn, values: list[dict[str, Any]]) -> None:
    if not values:
        return
    pk, c = col.columns()
    s.execute(
        update(c.table).where(pk == bindparam("_k")).values({col.column: bindparam("_v")}),
        values,
    )


def plaintext_counts(store: Store) -> dict[str, int]:
    """Values of each sealed column still stored in the clear."""
    return {col.label: _count(store, col, _plain(col.columns()[1])) for col in SEALED}


def seal_plaintext(
    keys: StoreKeys, progress: Progress | None = None, *, operator: str = OPERATOR
) -> dict[str, int]:
    """Seal every value of every sealed column that is still stored in the clear (a workspace
    made before encryption), in place, batch by batch; then rewrite the database so that no
    old page keeps the clear values (SQLite: secure delete, VACUUM and an emptied WAL;
    PostgreSQL: VACUUM FULL of the tables changed). Marks the keyring sealed. Safe to run
    again; an interrupted run resumes."""
    store = keys.store
    done: dict[str, int] = {}
    for col in SEALED:
        c = col.columns()[1]
        total = _count(store, col, _plain(c))
        n = 0
        if progress:
            progress(col.label, 0, total)
        for uow, rows in _batches(store, col, _plain(c)):
            values = [
                {"_k": k, "_v": keys.seal(col, k, v)}
                for k, v in rows
                if not is_sealed(v)  # re-checked under the lock
            ]
            _set(uow.session, col, values)
            uow.audit(
                "keys.sealed",
                operator=operator,
                payload={
                    "column": col.label,
                    "sealed": len(values),
                    "keys": [rows[0][0], rows[-1][0]],
                    "kek": keys.kek_id,
                },
            )
            n += len(rows)
            if progress:
                progress(col.label, n, max(total, n))
        done[col.label] = n
    if sum(done.values()):
        compact(store, [col.table for col in SEALED if done[col.label]])
    with store.unit_of_work() as uow:
        row = _row(uow.session, KEK_ROW)
        if row is not None and not row.detail.get("sealed_at"):
            row.detail = {**row.detail, "sealed_at": uow.now().isoformat()}
            row.updated_at = uow.now()
    return done


def needs_sealing(store: Store) -> bool:
    known = facts(store)
    return known is not None and not known.get("sealed_at")


def compact(store: Store, tables: list[str]) -> None:
    """Rewrite storage so that values overwritten in place leave no copy behind."""
    try:
        if store.backend == "postgresql":
            with store.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for t in sorted(set(tables)):
                    conn.execute(text(f"VACUUM FULL {t}"))
        else:
            with store.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                raw.execute("VACUUM")
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except Exception as e:  # another process holds the database: the pages go in time
        log.warning(
            "the database could not be compacted after sealing (%s): old pages may still "
            "hold values stored in the clear until `fieldid keys init` runs with no other "
            "fieldid process on the workspace",
            e,
        )


@dataclass
class RotationReport:
    old: str
    new: str
    rewrapped: dict[str, int]
    named_keys: int


def begin_rotation(keys: StoreKeys, new: bytes, source: KekSource) -> Keyring:
    """Record that the store's data keys are moving to ``new`` (so that an interruption
    resumes) and return the keyring that wraps under it and still opens the old."""
    store = keys.store
    new_id = fingerprint(new)
    if new_id == keys.kek_id and not (facts(store) or {}).get("rotation"):
        raise KeysError(
            "the new key is the key already in use: give another one", code="keys.rotation"
        )
    with store.unit_of_work() as uow:
        s = uow.session
        rot = _row(s, ROTATION_ROW)
        if rot is not None and rot.kek_id != new_id:
            raise KeysError(
                f"a rotation to the key {rot.kek_id} is under way: finish it first "
                "(`fieldid keys rotate --resume`)",
                code="keys.rotation",
            )
        if rot is None:
            kek = _row(s, KEK_ROW)
            assert kek is not None
            s.add(
                KeyringEntry(
                    name=ROTATION_ROW,
                    kek_id=new_id,
                    wrapped=None,
                    detail={"from": kek.kek_id, "source": source_record(source)},
                    updated_at=uow.now(),
                )
            )
    keyring = keys.keyring.with_current(new)
    keys.keyring = keyring
    return keyring


def rotate(
    keys: StoreKeys, progress: Progress | None = None, *, operator: str = OPERATOR
) -> RotationReport:
    """Re-wrap every data key (and the record-hash key) under the rotation's new KEK
    (:func:`begin_rotation` first), batch by batch; the data is not encrypted again. Ends the
    rotation: the keyring names the new KEK."""
    store = keys.store
    known = facts(store)
    assert known is not None
    rot = known.get("rotation")
    if rot is None:
        raise KeysError("no rotation is under way", code="keys.rotation")
    new_id = str(rot["kek_id"])
    if keys.keyring.kek_id != new_id:
        raise KeysError("the keyring does not hold the rotation's new key", code="keys.rotation")
    done: dict[str, int] = {}
    for col in SEALED:
        c = col.columns()[1]
        total = _count(store, col, _not_under(c, new_id))
        n = 0
        if progress:
            progress(col.label, 0, total)
        for uow, rows in _batches(store, col, _not_under(c, new_id)):
            values = [{"_k": k, "_v": keys.keyring.rewrap(v, col.aad(k))} for k, v in rows]
            _set(uow.session, col, values)
            uow.audit(
                "keys.rewrapped",
                operator=operator,
                payload={
                    "column": col.label,
                    "rewrapped": len(values),
                    "keys": [rows[0][0], rows[-1][0]],
                    "from": [k for k in keys.keyring.kek_ids if k != new_id],
                    "to": new_id,
                },
            )
            n += len(rows)
            if progress:
                progress(col.label, n, max(total, n))
        done[col.label] = n
    named = 0
    with store.unit_of_work() as uow:
        s = uow.session
        for row in s.scalars(select(KeyringEntry).where(KeyringEntry.wrapped.is_not(None))):
            assert row.wrapped is not None
            if Keyring.key_wrapped_by(row.wrapped) != new_id:
                row.wrapped = keys.keyring.wrap_key(
                    keys.keyring.unwrap_key(row.wrapped, row.name), row.name
                )
                row.kek_id = new_id
                row.updated_at = uow.now()
                named += 1
        kek = _row(s, KEK_ROW)
        rot_row = _row(s, ROTATION_ROW)
        assert kek is not None and rot_row is not None
        old = kek.kek_id
        kek.kek_id = new_id
        kek.detail = {
            **kek.detail,
            "source": rot_row.detail["source"],
            "rotated_at": uow.now().isoformat(),
            "previous": old,
        }
        kek.updated_at = uow.now()
        s.delete(rot_row)
        s.flush()
        uow.audit(
            "keys.rotate",
            operator=operator,
            payload={"from": old, "to": new_id, "rewrapped": done, "named_keys": named},
        )
    return RotationReport(old, new_id, done, named)


@dataclass
class CheckReport:
    checked: dict[str, int] = field(default_factory=dict)
    #: (column, row key, error code) of every value that did not open (at most 100 listed).
    failures: list[tuple[str, Any, str]] = field(default_factory=list)
    failed: int = 0
    #: Values not under the current KEK (a rotation not finished).
    other_kek: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "failed": self.failed,
            "failures": [{"column": c, "key": k, "code": e} for c, k, e in self.failures],
            "other_kek": self.other_kek,
        }


def count_sealed(store: Store) -> dict[str, int]:
    return {col.label: _count(store, col) for col in SEALED}


def check(
    keys: StoreKeys, progress: Progress | None = None, *, operator: str = OPERATOR
) -> CheckReport:
    """Open every sealed value of every sealed column (and the named keys): proof that the
    workspace's biometric data can be read with the key in use."""
    store = keys.store
    report = CheckReport()

    def fail(label: str, key: Any, code: str) -> None:
        report.failed += 1
        if len(report.failures) < 100:
            report.failures.append((label, key, code))

    for col in SEALED:
        total = _count(store, col)
        n = 0
        if progress:
            progress(col.label, 0, total)
        for _s, rows in _batches(store, col, write=False):
            for k, v in rows:
                try:
                    keys.open(col, k, v)
                    if wrapped_by(v) != keys.kek_id:
                        report.other_kek += 1
                except KeysError as e:
                    fail(col.label, k, e.code)
            n += len(rows)
            if progress:
                progress(col.label, n, max(total, n))
        report.checked[col.label] = n
    with store.read() as s:
        named = list(s.scalars(select(KeyringEntry).where(KeyringEntry.wrapped.is_not(None))))
    for row in named:
        try:
            assert row.wrapped is not None
            keys.keyring.unwrap_key(row.wrapped, row.name)
        except KeysError as e:
            fail("keyring", row.name, e.code)
    report.checked["keyring"] = len(named)
    store.append_audit(
        "keys.check",
        operator=operator,
        payload={"checked": report.checked, "failed": report.failed, "kek": keys.kek_id},
    )
    return report
