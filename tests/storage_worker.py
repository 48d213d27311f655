"""A process that uses one workspace while others do too (or is killed midway): run by
test_concurrency.py as ``python storage_worker.py MODE ROOT WORKER N``.

Modes:

- ``mix``: N rounds of (an audit entry of its own, a search, an enrollment of a new identity);
  prints one JSON line per completed use: ``{"op", "seq"}`` (the audit seq the use got).
- ``churn``: enrolls and searches until killed, printing a line after each committed use.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FACES = Path(__file__).parent / "fixtures" / "faces"


def main() -> None:
    mode, root, worker, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    from fieldid.audit import Attribution
    from fieldid.dataset import LabelledImage
    from fieldid.workspace import Workspace

    ws = Workspace.open(root)
    ws.enrollment.batch_size = 1
    attr = Attribution(f"worker-{worker}", "field-identification", f"CASE-W{worker}")
    probes = sorted(FACES.glob("subject-000*/*_0002.jpg"))
    images = sorted(FACES.glob("subject-*/*_0003.jpg")) or sorted(FACES.glob("*/*.jpg"))
    say = sys.stdout

    def out(op: str, seq: int | None, **extra: object) -> None:
        say.write(json.dumps({"op": op, "seq": seq, **extra}) + "\n")
        say.flush()

    i = 0
    while mode == "churn" or i < n:
        if mode == "mix":
            rec = ws.store.append_audit(
                "worker_note", operator=attr.operator, payload={"worker": worker, "i": i}
            )
            out("note", rec.seq)
        result = ws.searches.search(probes[(worker + i) % len(probes)], attr)
        out("search", result.audit_seq, search_id=result.search_id)
        identity = f"w{worker}-{i}"
        image = images[(worker * 7 + i) % len(images)]
        summary = ws.enrollment.enroll_images(
            [LabelledImage(image, identity, f"Worker {worker} subject {i} (synthetic)")],
            operator=attr.operator,
            source_name=f"worker {worker}",
            synthetic=True,
        )
        out("enroll", None, identity=identity, enrolled=summary.enrolled)
        i += 1
    ws.close()


if __name__ == "__main__":
    main()
