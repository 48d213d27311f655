"""What fieldid does not check, stated once and shown wherever it matters (report, docs).

A system that is trusted for what it does not do is dangerous, so these are said plainly, with
what was measured, and every surface quotes this module rather than its own paraphrase.
"""

from __future__ import annotations

#: Presentation attacks (a printed photo, a photo on a screen, a mask held to the camera).
PRESENTATION_ATTACK = (
    "fieldid has no presentation-attack detection that can be trusted. A photo of a photo, a "
    "face on a screen or a mask is not detected: fieldid searches whatever face it is shown. "
    "Two open presentation-attack models with clear provenance were tried on real faces; one "
    "called 87 % of real faces attacks, the other 46 %, so neither is used. The officer must see "
    "the live person whose photo is taken; a search says nothing about whether that person was "
    "present."
)

#: Everything not checked, as (short name, statement) pairs, in the order surfaces show them.
NOT_CHECKED: tuple[tuple[str, str], ...] = (("presentation attacks", PRESENTATION_ATTACK),)
