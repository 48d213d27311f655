"""Computing the new model's templates of enrolled images, in worker processes (a re-templating,
``gallery/retemplate.py``).

Each worker process builds the new model's face pipeline once and templates images exactly as
enrollment does (``gallery/enroll.py``): decode, acquire, embed, and refuse a face too small to
enrol. An image comes with its kept pixels (``enrollment_pixels``), or, enrolled before pixels were
kept, with the path and SHA-256 recorded at enrollment: the file is read again and used only if
it is unchanged. A worker whose parent process is gone (killed with -9) ends itself.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from fieldid.errors import FieldidError
from fieldid.gallery.pixels import decode_pixels
from fieldid.pipeline import FacePipeline, PipelineSpec
from fieldid.probe import IntakeLimits, ProbeImage, decode_probe

#: Images per task handed to a worker process.
TASK_SIZE = 8


class RetemplateError(FieldidError):
    """A re-templating refused (the codes are in ``gallery/retemplate.py``)."""

    code = "retemplate.refused"


@dataclass(frozen=True)
class Item:
    image_id: int
    #: The kept pixels ("png", bytes), or None: read ``source`` and check ``sha256``.
    fmt: str | None
    data: bytes | None
    source: str
    sha256: str


@dataclass(frozen=True)
class Result:
    image_id: int
    vector: bytes | None
    code: str | None = None
    message: str | None = None


@dataclass
class Worker:
    spec: PipelineSpec
    limits: IntakeLimits
    min_inter_eye_px: float
    _pipeline: FacePipeline | None = None

    @property
    def pipeline(self) -> FacePipeline:
        if self._pipeline is None:
            self._pipeline = FacePipeline.from_spec(self.spec, limits=self.limits)
        return self._pipeline

    def probe(self, item: Item) -> ProbeImage:
        if item.data is not None and item.fmt is not None:
            rgb = decode_pixels(item.data, item.fmt)
            return ProbeImage(rgb, "PNG", (rgb.shape[1], rgb.shape[0]), 1, item.sha256, 0)
        try:
            data = Path(item.source).read_bytes()
        except OSError as e:
            raise RetemplateError(
                f"the image was enrolled before images were kept and its file {item.source} "
                f"cannot be read ({e.strerror or e})",
                code="retemplate.image_unavailable",
            ) from e
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise RetemplateError(
                f"the image was enrolled before images were kept and its file {item.source} "
                "has changed since (another SHA-256)",
                code="retemplate.image_changed",
            )
        return decode_probe(data, self.limits)

    def template(self, item: Item) -> Result:
        """As enrollment does it (``gallery/enroll.py``): decode, acquire, embed, and refuse a
        face too small to enrol."""
        try:
            processed = self.pipeline.process_image(self.probe(item))
            ied = processed.acquisition.face.inter_eye_distance
            if ied < self.min_inter_eye_px:
                return Result(
                    item.image_id,
                    None,
                    "quality.too_far",
                    f"face too small to enrol: eyes {ied:.0f} px apart, "
                    f"{self.min_inter_eye_px:.0f} needed",
                )
        except FieldidError as e:
            return Result(item.image_id, None, e.code, e.message)
        except Exception as e:  # one damaged image must not stop the job: it is listed
            return Result(item.image_id, None, "retemplate.error", f"{type(e).__name__}: {e}")
        vec = np.ascontiguousarray(processed.template.vector, dtype="<f4").tobytes()
        return Result(item.image_id, vec)


_WORKER: Worker | None = None


def _watch_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (killed with -9, say)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _init_worker(spec: PipelineSpec, limits: IntakeLimits, min_ied: float, parent: int) -> None:
    global _WORKER
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _WORKER = Worker(spec, limits, min_ied)
    _ = _WORKER.pipeline


def _work(items: list[Item]) -> list[Result]:
    assert _WORKER is not None
    return [_WORKER.template(i) for i in items]


def compute(
    todo: list[int],
    load: Callable[[Sequence[int]], list[Item]],
    worker: Worker,
    *,
    workers: int,
    batch_size: int,
) -> Iterator[list[Result]]:
    """The results for the images ``todo`` (``load(ids)`` gives their items), in batches of
    ``batch_size``, computed by ``workers`` processes like ``worker`` (by ``worker`` itself, in
    this process, when ``workers`` is 1)."""
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    if workers == 1:
        for ids in batches:
            yield [worker.template(item) for item in load(ids)]
        return
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(worker.spec, worker.limits, worker.min_inter_eye_px, os.getpid()),
    ) as pool:
        pending: list[Result] = []
        inflight: set[Future[list[Result]]] = set()
        queue = list(reversed(batches))
        while True:
            while queue and len(inflight) < 2 * workers:
                items = load(queue.pop())
                for k in range(0, len(items), TASK_SIZE):
                    inflight.add(pool.submit(_work, items[k : k + TASK_SIZE]))
            if not inflight:
                break
            finished, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            for f in finished:
                try:
                    pending.extend(f.result())
                except BrokenProcessPool as e:
                    raise RetemplateError(
                        f"the worker processes failed ({e}): nothing of this batch was "
                        "written; run the command again to resume",
                        code="retemplate.workers",
                    ) from e
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending
