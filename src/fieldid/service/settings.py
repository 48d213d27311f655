"""Settings of the HTTP service (the workspace's fieldid.toml holds the identification policy:
purposes, notice, thresholds, adjudication, retention, the receipt's text)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fieldid.retention.purge import SCHEDULE_INTERVAL_S


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
    #: Seconds between scheduled retention purges (``fieldid.retention.run_scheduled_purge``,
    #: also run at start-up); 0 turns the schedule off (a deployment that purges from cron).
    purge_interval_s: float = SCHEDULE_INTERVAL_S
    #: Demo only: the onboarding page where a volunteer enrols their own face with consent, and
    #: the officer role may enrol for it (``fieldid demo`` turns it on; never a deployment).
    demo_onboarding: bool = False
    #: Demo only: volunteers' enrolments are deleted after this many seconds.
    demo_volunteer_ttl_s: int = 24 * 3600
    #: Shown in the page header, e.g. "DEMO: synthetic data".
    banner: str = ""
    #: The phone app holds a capture it could not send (no signal) at most this long, encrypted,
    #: then wipes it and says so at the next contact. Search request keys are remembered for at
    #: least twice this long (``api.idempotency_ttl``).
    capture_queue_limit_s: int = 15 * 60
    #: A search request the phone has had no answer to for this long is abandoned and retried
    #: (the same idempotency key: it cannot run twice); the officer sees "still trying" sooner.
    capture_send_timeout_s: float = 30.0
    #: Face work (decode, detect, align, embed) runs in this many worker processes, each job
    #: limited to ``face_timeout_s`` seconds and ``face_memory_mb`` MB of memory, with at most
    #: ``face_queue`` jobs waiting (docs/security.md, "Limits per request"). 0 runs face work in
    #: the server process without those limits: tests and tools only.
    face_workers: int = 2
    face_timeout_s: float = 10.0
    face_memory_mb: int = 1024
    face_queue: int = 8
