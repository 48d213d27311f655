"""Settings of the HTTP service (the workspace's fieldid.toml holds the identification policy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ServiceSettings:
    """How the service serves.

    ``cookie_secure``: ``"auto"`` marks the session cookie ``Secure`` whenever the request came
    over https (and, behind a proxy with ``trust_forwarded_proto``, when the proxy says it did).
    The demo serves plain http on 127.0.0.1: a ``Secure`` cookie would be dropped there by some
    browsers and login would silently fail, while the loopback interface never carries the
    cookie across a network. ``"always"`` is the setting for any deployment reachable from a
    network (behind TLS); ``"never"`` exists for tests only.
    """

    cookie_secure: Literal["auto", "always", "never"] = "auto"
    trust_forwarded_proto: bool = False
    #: Largest upload accepted (bytes); the workspace's intake limits apply as well.
    max_upload_bytes: int = 10 * 1024 * 1024
    #: The camera size the capture page asks getUserMedia for (and says so on the page).
    capture_width: int = 640
    capture_height: int = 480
    #: Live-guidance frames are downscaled to this width in the browser before they are sent.
    guidance_width: int = 320
    #: Frames per second the capture page sends for live guidance.
    guidance_fps: float = 3.0
    #: Notice to the person scanned: "required" (must be ticked), "ask" (recorded either way),
    #: or "off" (no field).
    notice_policy: Literal["required", "ask", "off"] = "required"
    #: How a person scanned can ask for redress (shown on the receipt).
    redress_contact: str = "the data-protection office of the agency that ran the search"
    #: Results (and the probe image) kept in server memory for display, per search.
    results_ttl_seconds: int = 3600
    results_max_bytes: int = 64 * 1024 * 1024
    #: Shown in the page header, e.g. "DEMO: synthetic data".
    banner: str = ""
