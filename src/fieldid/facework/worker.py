"""The body of a face-work process (run by :class:`fieldid.facework.pool.FacePool`).

Started as ``python -m fieldid.facework.worker FD``, FD one end of a socket pair. Protocol over it
(``multiprocessing.connection`` framing, pickles), parent → worker: first
``(PipelineSpec, IntakeLimits, memory_mb)``, then jobs ``("process", bytes)``,
``("enroll", bytes)`` and ``("check", bytes, scale)``; worker → parent:
``("ready", pid, baseline_bytes, model)`` once, after the models are loaded, then for each
job ``("ok", result)`` or ``("error", type, message, code, details)``. A worker that hits its
memory cap answers ``probe.too_costly`` and exits (its heap may be fragmented; the pool starts
another); the pool kills a worker whose job overruns its time limit.

The memory cap is ``RLIMIT_AS``, set after the models are loaded to the address space the worker
then holds plus ``memory_mb``: every allocation a job makes (decoded pixels, detector copies,
model scratch) comes out of that allowance, and one past it fails there, in this process only.
"""

from __future__ import annotations

import os
import resource
import traceback
from multiprocessing.connection import Connection
from typing import Any

from fieldid.errors import FieldidError, ProbeRejected

#: Pixels are uint8; a job's arrays come and go; a thread stack or malloc arena may need a few MB.
_MB = 1024 * 1024


def _address_space() -> int:
    """This process's virtual memory size in bytes (Linux), or 0 where unknown."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _too_costly(what: str, memory_mb: int) -> ProbeRejected:
    return ProbeRejected(
        f"the photo needs more memory than one request may use ({memory_mb} MB; {what}): send "
        "an ordinary photo (JPEG, longest side about 4000 pixels)",
        code="probe.too_costly",
        memory_mb=memory_mb,
    )


def _error(err: FieldidError) -> tuple[Any, ...]:
    return ("error", type(err), err.message, err.code, err.details)


def serve(conn: Connection) -> None:
    """Load the pipeline, cap the address space, then answer jobs until the pipe closes."""
    import cv2

    from fieldid.pipeline import FacePipeline

    cv2.setNumThreads(1)  # one core per worker; the pool decides the parallelism
    try:
        spec, limits, memory_mb = conn.recv()
    except (EOFError, OSError):
        return
    try:
        pipeline = FacePipeline.from_spec(spec, limits=limits).load()  # weights in, verified
    except FieldidError as err:
        conn.send(("failed", *_error(err)[1:]))
        return
    baseline = _address_space()
    if baseline and memory_mb > 0:
        cap = baseline + memory_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    conn.send(("ready", os.getpid(), baseline, str(pipeline.model)))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        fatal = False
        try:
            if job[0] == "process":
                reply: tuple[Any, ...] = ("ok", pipeline.process(job[1]).result())
            elif job[0] == "enroll":
                reply = ("ok", pipeline.process(job[1]).enrollment())
            elif job[0] == "check":
                reply = ("ok", pipeline.check_frame(job[1], job[2]))
            else:
                raise ValueError(f"unknown job {job[0]!r}")
        except FieldidError as err:
            reply = _error(err)
        except MemoryError:
            reply, fatal = _error(_too_costly("out of memory", memory_mb)), True
        except cv2.error as exc:
            fatal = "memory" in str(exc).lower()
            reply = _error(
                _too_costly("out of memory", memory_mb)
                if fatal
                else ProbeRejected(
                    f"the photo could not be processed ({str(exc).strip()[:200]})",
                    code="probe.corrupt",
                )
            )
        except Exception as exc:  # a fault on this input: say so, keep the traceback in the log
            traceback.print_exc()
            fault = ProbeRejected(
                f"the photo could not be processed ({type(exc).__name__}): send an ordinary "
                "JPEG photo",
                code="probe.unprocessable",
                error=type(exc).__name__,
            )
            reply, fatal = _error(fault), True
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        if fatal:
            return


if __name__ == "__main__":
    import sys

    serve(Connection(int(sys.argv[1])))
