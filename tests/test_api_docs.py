"""docs/api.md says what the code does: the status of every error family and of every code with a
status of its own, and the client's methods."""

from __future__ import annotations

import re
from pathlib import Path

from fieldid.client import ROUTES
from fieldid.service.problems import _STATUS_BY_CODE, _STATUS_BY_FAMILY, status_for

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _table(text: str) -> dict[str, int]:
    """``| `name` | status |`` rows of a markdown table."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z_.]+)` \| (\d{3}) \|", text, flags=re.MULTILINE)
    }


def test_error_statuses_in_the_docs_are_the_services():
    rows = _table(DOC.read_text(encoding="utf-8"))
    for family, status in _STATUS_BY_FAMILY.items():
        assert rows.get(family) == status, f"docs/api.md: family {family} answers {status}"
    for code, status in _STATUS_BY_CODE.items():
        assert rows.get(code) == status, f"docs/api.md: {code} answers {status}"
    for name, status in rows.items():
        assert status_for(name if "." in name else f"{name}.x") == status, name


def test_every_client_method_is_documented():
    text = DOC.read_text(encoding="utf-8")
    listed = re.search(r"^Methods: (.+?)\.\s", text, flags=re.MULTILINE | re.DOTALL)
    assert listed is not None
    names = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    assert set(ROUTES) | {"openapi"} == names
