"""``fieldid demo``: the command line end to end on a demo workspace.

The demo gallery holds one real face, NASA's public-domain astronaut portrait (shipped with
scikit-image; a copy is packaged here), enrolled under a neutral synthetic identity, and thousands
of synthetic template-only identities. No record is attached to anyone: the only names are
``Subject NNNN (synthetic)``.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.markup import escape

from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError, WorkspaceError
from fieldid.gallery.distractors import bundled
from fieldid.workspace import Workspace

DEMO_SUBJECT = "subject-0001"


def astronaut_path() -> Path:
    with resources.as_file(resources.files("fieldid.demo").joinpath("astronaut.jpg")) as p:
        return Path(p)


def closer_crop(path: Path) -> bytes:
    """Another capture of the same face, closer: cropped and enlarged, turned a little, in
    dimmer light, with sensor noise, and JPEG-compressed again."""
    img = Image.open(path).convert("RGB")
    crop = img.crop((120, 10, 340, 230)).rotate(4, resample=Image.Resampling.BICUBIC)
    crop = crop.resize((480, 480), Image.Resampling.LANCZOS)
    pixels = np.asarray(crop, dtype=np.float32) / 255.0
    noise = np.random.default_rng(7).normal(0, 0.02, pixels.shape)
    dimmer = np.clip(pixels**1.25 * 0.85 + noise, 0, 1)
    buf = io.BytesIO()
    Image.fromarray((dimmer * 255).astype(np.uint8)).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def add_distractors(ws: Workspace, distractors: int, *, operator: str) -> int:
    """Top the gallery up to ``distractors`` synthetic template-only identities (besides the
    demo subject), in one unit of work with its audit entry. Returns how many were added."""
    size = ws.gallery.size()
    missing = distractors - (size.persons - 1)
    if missing <= 0:
        return 0
    model = bundled(str(ws.pipeline.model))
    if model is None:
        raise WorkspaceError("no distractor model for this embedder", code="demo.no_model")
    start = size.persons
    people = [
        (f"synthetic-{start + i:07d}", f"Subject {start + i:07d} (synthetic)")
        for i in range(missing)
    ]
    with ws.store.unit_of_work() as uow:
        ws.gallery.add_template_only(uow, people, model.sample(missing, seed=start))
        uow.audit(
            "synth",
            operator=operator,
            payload={"stage": "distractors", "added": missing, "synthetic": True},
        )
    ws.gallery.flush()
    return missing


def run_demo(
    root: Path,
    *,
    distractors: int = 10_000,
    console: Console | None = None,
    database_url: str | None = None,
) -> None:
    out = console or Console()
    if (root / "fieldid.toml").exists():
        ws = Workspace.open(root)
    else:
        ws = Workspace.init(root, database_url=database_url)
    from fieldid.access.accounts import Accounts
    from fieldid.demo.server import DEMO_SETUP, reset_operators

    out.print(f"[bold]fieldid demo[/] in {root} (all identities are synthetic)")
    # The walkthrough acts as the demo's own operators, accounts like any other.
    reset_operators(ws)
    portrait = astronaut_path()
    summary = ws.enrollment.enroll_images(
        [LabelledImage(portrait, DEMO_SUBJECT, "Subject 0001 (synthetic)")],
        operator=DEMO_SETUP,
        source_name="demo",
        synthetic=True,
    )
    out.print(f"enrolled {summary.enrolled} image, {summary.already_enrolled} already enrolled")
    add_distractors(ws, distractors, operator=DEMO_SETUP)
    size = ws.gallery.size()
    out.print(f"gallery: {size.persons} people ({size.persons - 1} template-only distractors)")

    service = ws.searches
    attr = Attribution("demo-officer", "field-identification", "DEMO-0001")
    out.print("\n1. search with the full portrait (the face is small in the frame):")
    try:
        service.search(portrait, attr)
    except FieldidError as e:
        out.print(f"   refused {escape('[' + e.code + ']')}: {escape(e.message)}")
    out.print("\n2. search after moving closer:")
    probe = closer_crop(portrait)
    result = service.search(probe, attr)
    q = result.quality
    tif = result.threshold_in_force or {}
    how = (
        f"for FPIR {tif['target_fpir']:g} at {tif['gallery_size']:,} templates"
        if tif.get("how") == "target_fpir"
        else "configured"
    )
    out.print(
        f"   probe quality {q['unified']}/100 ({q['band']}); threshold {result.threshold:.4f} "
        f"({how})"
    )
    for c in result.candidates:
        out.print(f"   rank {c.rank}: {c.display_name}  score {c.score:.4f}")
        out.print(f"      {escape(c.meaning_text)}")
    if not result.candidates:
        out.print("   no candidate at or above the threshold")
    out.print(f"   [italic]{result.notice}[/]")
    out.print("\n3. verify the two photos 1:1:")
    v = service.verify(portrait, probe, attr)
    out.print(f"   score {v.score:.4f} (threshold {v.threshold:.4f}): {escape(v.meaning_text)}")
    chain = verify_log(ws.store)
    out.print(f"\naudit log: {chain.checked} entries, chain intact: {chain.ok}")
    token = root / "demo-officer.token"
    issued = Accounts(ws.store, ws.clock).issue_token(
        "demo-officer", lifetime=timedelta(days=1), label="fieldid demo --console", by=DEMO_SETUP
    )
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(issued.secret + "\n")
    out.print("try it yourself (in the virtualenv: . .venv/bin/activate), as demo-officer:")
    out.print(
        f"  fieldid search --workspace {root} --token-file {token} PHOTO "
        "--purpose field-identification --case CASE-1",
        soft_wrap=True,
    )
    ws.close()
