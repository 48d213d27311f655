"""Typed errors with stable reason codes.

Every refusal the system makes carries a ``code`` (stable, machine-readable, safe to match on in
clients and tests) and a ``message`` a person can act on. Codes never change meaning; new ones may
be added.
"""

from __future__ import annotations

from typing import Any


class FieldidError(Exception):
    """Base of every error fieldid raises on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.details}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ProbeRejected(FieldidError):
    """The image could not be taken in (format, size, corruption). Codes start with ``probe.``."""

    code = "probe.rejected"


class AcquisitionFailed(FieldidError):
    """No usable face was found in an image (failure to acquire). Codes start with ``acquire.``."""

    code = "acquire.no_face"


class QualityRefused(FieldidError):
    """The probe failed the quality gate. ``details['guidance']`` lists what to change."""

    code = "quality.refused"


class ModelMismatch(FieldidError):
    """A template made by one model was offered to a gallery or comparison built on another."""

    code = "template.model_mismatch"


class ModelError(FieldidError):
    """A model file could not be loaded or does not behave as declared."""

    code = "model.invalid"


class CatalogueError(FieldidError):
    """The model catalogue could not fetch, verify or install a model."""

    code = "catalogue.error"


class WorkspaceError(FieldidError):
    """A workspace is missing, malformed, or asked for something its configuration forbids."""

    code = "workspace.invalid"


class AuthorisationError(FieldidError):
    """A use lacks an operator, a permitted purpose or a case reference."""

    code = "use.unattributed"


class DatasetError(FieldidError):
    """An enrollment source or evaluation set is malformed."""

    code = "dataset.invalid"


def combined(errors: list[FieldidError]) -> FieldidError:
    """Every problem of one request as one error, so a client hears of all of them at once.

    One problem: that error, with ``problems`` listing it. Several: an error whose code is
    ``<family>.several`` when they share a family (``use.several``), else ``request.several``,
    whose message joins theirs and whose ``problems`` lists each (code, message, details)."""
    if not errors:
        raise ValueError("no problems to combine")
    listed = [e.to_dict() for e in errors]
    if len(errors) == 1:
        err = errors[0]
        err.details.setdefault("problems", listed)
        return err
    families = {e.code.split(".", 1)[0] for e in errors}
    family = families.pop() if len(families) == 1 else "request"
    kind = type(errors[0]) if all(type(e) is type(errors[0]) for e in errors) else FieldidError
    return kind(
        f"{len(errors)} problems: " + "; ".join(e.message for e in errors),
        code=f"{family}.several",
        problems=listed,
    )
