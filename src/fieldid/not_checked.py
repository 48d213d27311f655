"""What fieldid does not check, stated once and shown wherever it matters (the oversight report,
the privacy impact assessment, the docs).

A system that is trusted for what it does not do is dangerous, so these are said plainly, with
what was measured, and the surfaces quote this module rather than their own paraphrase.
"""

from __future__ import annotations

#: What was tried before deciding that no presentation-attack detector is used.
PAD_TRIED = (
    "Two open presentation-attack models with clear provenance were tried on real faces; one "
    "called 87 % of real faces attacks, the other 46 %, so neither is used."
)
#: What that asks of the officer.
PAD_OFFICER = (
    "The officer must see the live person whose photo is taken; a search says nothing about "
    "whether that person was present."
)
#: Presentation attacks (a printed photo, a photo on a screen, a mask held to the camera).
PRESENTATION_ATTACK = (
    "fieldid has no presentation-attack detection that can be trusted. A photo of a photo, a "
    "face on a screen or a mask is not detected: fieldid searches whatever face it is shown. "
    f"{PAD_TRIED} {PAD_OFFICER}"
)

#: Where a search's probe came from (``searches.capture``), in the words every surface shows:
#: the field app's live camera, or a supplied file (an upload, the command line).
CAPTURE_TEXT: dict[str | None, str] = {
    "live": "from the live camera",
    "file": "from a file: fieldid cannot tell a photo of a photo from a live person",
    None: "where the photo came from was not recorded (a search made before it was)",
}


def capture_text(capture: str | None) -> str:
    """What a search's capture source means, for the results page, the API and the report."""
    return CAPTURE_TEXT.get(capture, CAPTURE_TEXT[None])


#: Everything not checked, as (short name, statement) pairs, in the order surfaces show them.
NOT_CHECKED: tuple[tuple[str, str], ...] = (("presentation attacks", PRESENTATION_ATTACK),)
