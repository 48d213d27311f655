"""The one place the gallery touches its vector index: an index that follows the database.

The database is the truth; the index is derived from it and labelled with the gallery revision
it reflects (``gallery_meta.revision``, moved in the same transaction as every change to
templates). This process's index is kept at the database's revision:

- after a committed change, :meth:`IndexFollower.apply` applies it, but only to an index at the
  revision the change started from; otherwise the index is dropped and caught up at next use;
- :meth:`IndexFollower.current` returns the index at the revision the database is at now: the
  one in memory, else the one on disk, else one caught up from either (templates are never
  changed in place, so adding the ids the database has and the index lacks, and removing the
  ones it no longer has, gives the index at the new revision), else one rebuilt from scratch.

So a crash between a commit and the index update, or another process (CLI, another worker)
changing the gallery, leaves an index that is detected as behind and caught up. On disk the index
is sealed with the store's keyring (templates are biometric data); in memory it is plain, so a
search decrypts nothing. This is the
``faiss-local`` backend's persistence and catch-up; the gallery sees it through the port
(:class:`fieldid.gallery.vectors.LocalSync`), like pgvector and Milvus.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from fieldid.index.faiss_engine import MANIFEST, FaissIndex, IndexParams
from fieldid.keys.envelope import Keyring

log = logging.getLogger(__name__)

Vectors = tuple[NDArray[np.int64], NDArray[np.float32]]


class IndexFollower:
    def __init__(
        self,
        directory: Path,
        dim: int,
        params: IndexParams,
        keyring: Callable[[], Keyring | None] = lambda: None,
    ) -> None:
        self.directory = directory
        self.dim = dim
        self.params = params
        #: The keyring the index is sealed with on disk (asked at each load and save: a
        #: rotation changes it).
        self._keyring = keyring
        self._index: FaissIndex | None = None
        self._revision: str | None = None
        self._dirty = False
        #: How the last :meth:`current` got its index: memory, disk, caught_up or rebuilt.
        self.last_source: str | None = None

    @property
    def loaded(self) -> FaissIndex | None:
        """The index in memory, if any (readiness, metrics)."""
        return self._index

    def _disk_revision(self) -> str | None:
        try:
            rev = json.loads((self.directory / MANIFEST).read_text()).get("revision")
        except (OSError, ValueError, AttributeError):
            return None
        return rev if isinstance(rev, str) else None

    def _load(self, revision: str) -> FaissIndex | None:
        return FaissIndex.load(
            self.directory, revision, params=self.params, keyring=self._keyring()
        )

    def current(
        self,
        revision: str,
        template_ids: Callable[[], NDArray[np.int64]],
        vectors: Callable[[Sequence[int] | None], Vectors],
    ) -> FaissIndex:
        """The index at ``revision`` (see the module docstring). ``template_ids()``: every
        template id in the database; ``vectors(ids)``: those templates (``None``: all)."""
        if self._index is not None and self._revision == revision:
            self.last_source = "memory"
            return self._index
        loaded = self._load(revision)
        if loaded is not None:
            self._set(loaded, revision, dirty=False)
            self.last_source = "disk"
            return loaded
        base = self._index
        if base is None:
            old = self._disk_revision()
            base = None if old is None else self._load(old)
        if base is not None and base.dim != self.dim:
            base = None  # another model's index (a re-templating switched the gallery)
        if base is not None:
            have = base.ids()
            want = template_ids()
            missing = np.setdiff1d(want, have, assume_unique=True)
            gone = np.setdiff1d(have, want, assume_unique=True)
            if len(gone):
                base.remove(gone)
            if len(missing):
                ids, vecs = vectors([int(i) for i in missing])
                base.add(ids, vecs)
            log.info(
                "vector index caught up to revision %s (+%d, -%d)",
                revision,
                len(missing),
                len(gone),
            )
            self._set(base, revision, dirty=True)
            self.flush()
            self.last_source = "caught_up"
            return base
        self.last_source = "rebuilt"
        return self.rebuild(revision, vectors(None))

    def rebuild(self, revision: str, vectors: Vectors) -> FaissIndex:
        ids, vecs = vectors
        index = FaissIndex.build(ids, vecs, dim=self.dim, params=self.params, revision=revision)
        self._set(index, revision, dirty=True)
        self.flush()
        return index

    def apply(
        self,
        old: str,
        new: str,
        add: tuple[Sequence[int], NDArray[np.float32]] | None = None,
        remove: Sequence[int] = (),
        *,
        from_disk: bool = False,
    ) -> bool:
        """Apply a committed change that moved the revision from ``old`` to ``new``. Returns
        False (and drops the index) when no index at ``old`` was at hand; ``from_disk``: look
        on disk too when memory has none (a change that should not cost a rebuild)."""
        index = self._index if self._revision == old else None
        if index is None and from_disk:
            index = self._load(old)
        if index is None:
            self._index, self._revision, self._dirty = None, None, False
            return False
        if add is not None and len(add[0]):
            index.add(np.asarray(add[0], dtype=np.int64), add[1])
        if len(remove):
            index.remove(np.asarray(list(remove), dtype=np.int64))
        self._set(index, new, dirty=True)
        return True

    def flush(self) -> None:
        """Persist the index in memory, labelled with the revision it reflects. Saving is a
        cache for the next start: when it fails (another process saving into the same folder
        at the same moment, a full disk) the index in memory is still right, and the next
        start catches up from whatever is on disk."""
        if self._index is not None and self._dirty and self._revision is not None:
            try:
                self._index.save(self.directory, revision=self._revision, keyring=self._keyring())
            except (OSError, RuntimeError) as e:
                log.warning("the vector index was not saved (%s); it is caught up later", e)
                return
            self._dirty = False

    def reseal(self) -> bool:
        """Save the index in memory again (under the keyring's current key: after a
        rotation). False when there is none in memory."""
        if self._index is None or self._revision is None:
            return False
        self._dirty = True
        self.flush()
        return not self._dirty

    def _set(self, index: FaissIndex, revision: str, *, dirty: bool) -> None:
        index.revision = revision
        self._index, self._revision, self._dirty = index, revision, dirty
