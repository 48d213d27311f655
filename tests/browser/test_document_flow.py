"""Documents first in a real browser: the officer says the person has a document, photographs it
with the fake camera (fed a synthetic SPECIMEN data page) inside the document frame, then gives
the face; the page shows what was read, each check digit's state and the 1:1 result; the
document settles the encounter, with no gallery search, and the receipt says so.

The SPECIMEN page carries a test fixture face (a neutral synthetic identity, tests/fixtures/faces):
no real person's face appears in any screenshot beside the invented document (the camera's
picture is masked in them; the result pages show no image).
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from browser.helpers_browser import launch, login, phone_context, shot, write_y4m
from fieldid.documents.mrz import MrzData
from fieldid.documents.specimen import Degradation, photograph, render_page

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
HOLDER = FACES / "subject-0003" / "subject-0003_0001.jpg"
SAME = FACES / "subject-0003" / "subject-0003_0002.jpg"
OTHER = FACES / "subject-0004" / "subject-0004_0002.jpg"


@pytest.fixture(scope="module")
def document_video(tmp_path_factory: pytest.TempPathFactory, server: Any) -> tuple[Path, list[str]]:
    data = MrzData(
        "TD3", "P", "UTO", "SP7654321", "SPECIMEN", "SAMPLE", "UTO", "900704", "X", "320630"
    )
    face = np.asarray(Image.open(HOLDER).convert("RGB"))
    page = render_page(data, portrait=face, seed=11)
    deg = Degradation(frame=server.capture).clean()
    photo = photograph(page, random.Random(11), deg)
    path = tmp_path_factory.mktemp("y4m-doc") / "document.y4m"
    write_y4m(path, Image.open(io.BytesIO(photo.jpeg)).convert("RGB"))
    return path, page.mrz_lines


def test_document_first_flow(
    playwright: Any, server: Any, artifacts: Path, document_video: Any
) -> None:
    video, printed = document_video
    browser = launch(playwright, video=video)
    ctx = phone_context(browser, server)
    page = ctx.new_page()
    login(page, server, "demo-officer")
    page.wait_for_url("**/start")
    page.select_option("[data-testid=purpose]", "field-identification")
    page.fill("[data-testid=case-ref]", "CASE-DOC-1")
    page.check("[data-testid=notice]")
    question = page.locator("[data-testid=document-question]")
    assert "identity document" in question.inner_text()
    shot(page, artifacts, "20-document-question")
    page.click("[data-testid=has-document]")
    page.wait_for_url("**/document?*")

    # the camera, inside the document frame
    page.wait_for_function("!document.getElementById('doc-shoot').disabled")
    assert page.locator("[data-testid=document-frame]").is_visible()
    shot_path = artifacts / "21-document-camera.png"
    page.screenshot(path=str(shot_path), full_page=True, mask=[page.locator("#doc-video")])
    page.click("[data-testid=document-shoot]")
    page.wait_for_selector("[data-testid=document-taken]:not([hidden])")
    # then the face: a photo file (the fake camera plays the document only)
    page.set_input_files("[data-testid=face-file]", str(SAME))
    page.click("[data-testid=document-submit]")
    page.wait_for_selector("[data-testid=document-outcome]", timeout=120_000)

    headline = page.locator("[data-testid=document-headline]").inner_text()
    assert headline == "Document passed: encounter settled", page.locator("main").inner_text()
    assert (
        "No gallery search was made" in page.locator("[data-testid=document-outcome]").inner_text()
    )
    assert "MRZ read" in page.locator("[data-testid=evidence]").inner_text()
    fields = page.locator("[data-testid=document-fields]").inner_text()
    assert "SP7654321" in fields and "SPECIMEN" in fields and "2032-06-30" in fields
    assert page.locator("[data-testid=mrz-lines]").inner_text().split() == printed
    digits = page.locator("[data-testid=check-digits]").inner_text()
    assert "document number" in digits and "valid" in digits and "invalid" not in digits
    one = page.locator("[data-testid=one-to-one]").inner_text()
    assert "At or above the threshold" in one and "not an identification" in one
    shot(page, artifacts, "22-document-result")

    page.click("[data-testid=document-receipt]")
    page.wait_for_url("**/receipt/document/*")
    assert (
        "not searched against any gallery"
        in page.locator("[data-testid=what-happened]").inner_text()
    )
    shot(page, artifacts, "23-document-receipt")

    # a second encounter: the face is not the portrait's; the document does not settle it and
    # the 1:N search is offered, with the check attached
    page.goto(server.url + "/start")
    page.select_option("[data-testid=purpose]", "field-identification")
    page.fill("[data-testid=case-ref]", "CASE-DOC-2")
    page.check("[data-testid=notice]")
    page.click("[data-testid=has-document]")
    page.wait_for_function("!document.getElementById('doc-shoot').disabled")
    page.click("[data-testid=document-shoot]")
    page.wait_for_selector("[data-testid=document-taken]:not([hidden])")
    page.set_input_files("[data-testid=face-file]", str(OTHER))
    page.click("[data-testid=document-submit]")
    page.wait_for_selector("[data-testid=document-outcome]", timeout=120_000)
    assert page.locator("[data-testid=document-headline]").inner_text() == (
        "Document did not settle the encounter"
    )
    why = page.locator("[data-testid=document-why]").inner_text()
    assert "does not match the portrait" in why
    assert "Below the threshold" in page.locator("[data-testid=one-to-one]").inner_text()
    shot(page, artifacts, "24-document-not-settled")
    page.click("[data-testid=to-search]")
    page.wait_for_url("**/capture?*document_check=*")
    after = page.locator("[data-testid=after-document]").inner_text()
    assert "after document check" in after.lower()
    href = page.locator("[data-testid=use-file]").get_attribute("href") or ""
    assert "document_check=" in href
    assert not ctx.blocked
    browser.close()  # type: ignore[attr-defined]

    # the check is recorded and audited; no search was made for this case
    ws = server.ws
    entries = [e for e in ws.store.audit_entries() if e.case_ref == "CASE-DOC-1"]
    # the check, then the receipt's reading of it (audited as a view)
    assert [e.event for e in entries] == ["document_check", "document_check_view"]
    assert entries[0].payload["outcome"] == "settled_by_document"
    second = [e for e in ws.store.audit_entries() if e.case_ref == "CASE-DOC-2"]
    assert [e.payload["outcome"] for e in second] == ["not_settled"]
