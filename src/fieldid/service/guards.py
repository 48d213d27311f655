"""ASGI guards in front of the application: request body size and path ids.

``RequestGuard`` wraps the whole app (outside routing, parsing and authentication):

- **Body size.** A request whose ``Content-Length`` exceeds the limit for its path is refused at
  once with 413, before a byte of the body is read. A body sent without a length (chunked) is
  counted as it streams; the first chunk past the limit ends the reading, and the answer is 413
  whatever the application was about to say. No more than the limit plus one chunk is ever read.
- **Path ids.** Every integer id in a path is a 64-bit database key. A path segment that reads as
  a whole number beyond ±(2^63 − 1) is answered 404 (problem+json) before routing, so an
  out-of-range id never reaches the database; a non-numeric id where a number belongs is a 404
  too (see ``fieldid.service.problems.validation_error_handler``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest id a path may carry: ids are INTEGER columns (``fieldid.store.schema``), 32-bit
#: on PostgreSQL; a larger number names no record on either backend.
MAX_ID = 2**31 - 1
_MIB = 1024 * 1024


def problem_bytes(status: int, code: str, title: str, detail: str, **extra: Any) -> bytes:
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return json.dumps(body).encode()


async def send_problem(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def as_id(text: str) -> int | None:
    """A form field's id: plain ASCII digits naming a number from 1 to :data:`MAX_ID`, else
    None (a longer number names no record)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def out_of_range_id(path: str) -> str | None:
    """The first path segment that reads as a whole number (sign, underscores and surrounding
    blanks allowed, as the id parser allows them) beyond ±MAX_ID, if any."""
    for segment in path.split("/"):
        digits = segment.strip().replace("_", "")
        if digits[:1] in ("+", "-"):
            digits = digits[1:]
        if not (digits.isascii() and digits.isdigit()):
            continue
        significant = digits.lstrip("0")
        if len(significant) > len(str(MAX_ID)) or int(significant or "0") > MAX_ID:
            return segment
    return None


class _TooLarge(Exception):
    pass


class RequestGuard:
    """See the module note. ``body_limit(path)`` gives the byte limit for a path."""

    def __init__(self, app: ASGIApp, body_limit: Callable[[str], int]) -> None:
        self.app = app
        self.body_limit = body_limit

    def _too_large(self, path: str, limit: int) -> bytes:
        if path.startswith("/api/v1/imports"):
            return problem_bytes(
                413,
                "import.too_large",
                "The records could not be read",
                f"the upload is larger than {limit / _MIB:.0f} MiB: larger records files go "
                "through `fieldid import`",
                limit_bytes=limit,
            )
        return problem_bytes(
            413,
            "probe.too_large_bytes",
            "The image could not be taken in",
            f"the request is larger than {limit / _MIB:.0f} MiB: send a smaller photo (the "
            "limit covers the whole form, both photos of a verification included)",
            limit_bytes=limit,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        bad = out_of_range_id(path)
        if bad is not None:
            await send_problem(
                send,
                404,
                problem_bytes(
                    404,
                    "request.not_found",
                    "Not found",
                    f"no such record: {bad[:40]}{'…' if len(bad) > 40 else ''} is not an id "
                    f"(ids are whole numbers up to {MAX_ID})",
                ),
            )
            return
        limit = self.body_limit(path)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if text.isdigit() and int(text) > limit:
                    await send_problem(send, 413, self._too_large(path, limit))
                    return
        seen = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the 413 below replaces whatever the application answers
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, guarded_send)
        if exceeded and not started:
            await send_problem(send, 413, self._too_large(path, limit))
