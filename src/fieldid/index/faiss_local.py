"""The ``faiss-local`` adapter: the in-process faiss engine behind the port (the embedded default).

One :class:`~fieldid.index.faiss_engine.FaissIndex` per gallery (exact below a size threshold, IVF
with exact re-ranking above it), held in this process. With a ``directory`` the adapter owns its
persistence: :meth:`FaissLocalIndex.mark` saves the gallery's index atomically with the revision
(``<directory>/<gallery>/``, manifest last, checksummed), and opening loads what was saved; an
index whose files are missing or corrupt opens empty at no revision, so :meth:`check` reports it
stale and the caller rebuilds it from the database. Without a directory it lives in memory only.
With a ``keyring`` (:class:`fieldid.keys.envelope.Keyring`) the saved files are sealed
(templates are biometric data; docs/security.md) and an index saved in the clear opens empty.

Not safe for concurrent mutation (callers serialise writers, as the gallery does); searches may
run concurrently once writes have stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from numpy.typing import ArrayLike

from fieldid.index.faiss_engine import MANIFEST, FaissIndex, IndexParams
from fieldid.index.port import (
    GALLERIES,
    OPERATIONAL,
    Consistency,
    Gallery,
    Neighbours,
    VectorIndexError,
    as_ids,
    check_gallery,
    check_k,
    checked_batch,
    consistency,
)
from fieldid.keys.envelope import Keyring


class FaissLocalIndex:
    """The port over in-process faiss indexes, one per gallery. See the module doc."""

    backend = "faiss-local"

    def __init__(
        self,
        dim: int,
        params: IndexParams | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
        verify: bool = True,
        keyring: Keyring | None = None,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        self._dim = int(dim)
        self.params = params or IndexParams()
        self.directory = None if directory is None else Path(directory)
        self.keyring = keyring
        self._indexes: dict[str, FaissIndex] = {}
        for g in GALLERIES:
            self._indexes[g] = self._load(g, verify) or FaissIndex(self._dim, self.params)

    @classmethod
    def over(cls, engine: FaissIndex, *, gallery: Gallery = OPERATIONAL) -> FaissLocalIndex:
        """The port over an engine the caller keeps and persists (the gallery's follower,
        :mod:`fieldid.gallery.follower`): ``gallery`` is served by ``engine``, the other one
        is empty."""
        port = cls(engine.dim, engine.params)
        port._indexes[check_gallery(gallery)] = engine
        return port

    # ------------------------------------------------------------------ port
    @property
    def dim(self) -> int:
        return self._dim

    def engine(self, gallery: Gallery = OPERATIONAL) -> FaissIndex:
        """The gallery's faiss engine (for the gallery's own persistence until it uses the port)."""
        return self._indexes[check_gallery(gallery)]

    def upsert(self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        if len(id_arr) == 0:
            return
        index = self.engine(gallery)
        index.remove(id_arr)
        index.add(id_arr, vec)

    def insert_new(
        self, ids: ArrayLike, vectors: ArrayLike, *, gallery: Gallery = OPERATIONAL
    ) -> None:
        """Bulk load of ids known to be absent (a rebuild): one add, one IVF training."""
        id_arr, vec = checked_batch(ids, vectors, self._dim)
        self.engine(gallery).add(id_arr, vec)

    def delete(self, ids: ArrayLike, *, gallery: Gallery = OPERATIONAL) -> None:
        self.engine(gallery).remove(as_ids(ids))

    def search(self, queries: ArrayLike, k: int, *, gallery: Gallery = OPERATIONAL) -> Neighbours:
        scores, ids = self.engine(gallery).search(queries, check_k(k))
        return Neighbours(ids, scores)

    def count(self, *, gallery: Gallery = OPERATIONAL) -> int:
        return self.engine(gallery).ntotal

    def ready(self) -> bool:
        return True

    def revision(self, *, gallery: Gallery = OPERATIONAL) -> str | None:
        return self.engine(gallery).revision

    def mark(self, revision: str, *, gallery: Gallery = OPERATIONAL) -> None:
        index = self.engine(gallery)
        index.revision = str(revision)
        if self.directory is not None:
            index.save(self.directory / gallery, revision=str(revision), keyring=self.keyring)

    def check(
        self,
        revision: str,
        *,
        expected_count: int | None = None,
        gallery: Gallery = OPERATIONAL,
    ) -> Consistency:
        index = self.engine(gallery)
        return consistency(
            self.backend, gallery, revision, index.revision, expected_count, index.ntotal
        )

    def clear(self, *, gallery: Gallery = OPERATIONAL) -> None:
        """Forget every template of the gallery and its revision (a rebuild starts here)."""
        self._indexes[check_gallery(gallery)] = FaissIndex(self._dim, self.params)

    # ------------------------------------------------------------------ internals
    def _load(self, gallery: str, verify: bool) -> FaissIndex | None:
        if self.directory is None:
            return None
        d = self.directory / gallery
        try:
            saved = json.loads((d / MANIFEST).read_text()).get("revision")
        except (OSError, ValueError, AttributeError):
            return None
        loaded = FaissIndex.load(d, saved, params=self.params, verify=verify, keyring=self.keyring)
        if loaded is not None and loaded.dim != self._dim:
            raise VectorIndexError(
                f"the index saved in {d} holds {loaded.dim}-d vectors, this index is "
                f"{self._dim}-d: use another directory for another model",
                code="index.dim_mismatch",
                directory=str(d),
            )
        return loaded


__all__ = ["FaissLocalIndex"]
