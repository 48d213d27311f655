"""Helpers of the browser tests: fake-camera videos, test photos, the chromium launcher."""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "browser-artifacts"
PHONE = {"width": 390, "height": 844}


def write_y4m(path: Path, frame: Image.Image, frames: int = 6) -> None:
    """A 4:2:0 YUV4MPEG2 video repeating ``frame`` (chromium loops it as the camera)."""
    w, h = frame.size
    ycc = np.asarray(frame.convert("RGB").convert("YCbCr"), dtype=np.uint8)
    y = ycc[:, :, 0].tobytes()
    small = np.asarray(
        frame.convert("RGB").convert("YCbCr").resize((w // 2, h // 2), Image.Resampling.BILINEAR),
        dtype=np.uint8,
    )
    u, v = small[:, :, 1].tobytes(), small[:, :, 2].tobytes()
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + y + u + v)


def face_frame(size: tuple[int, int], face_px: int) -> Image.Image:
    """The astronaut's face, ``face_px`` wide, centred on a grey background of ``size``."""
    from fieldid.demo import astronaut_path

    img = Image.open(astronaut_path()).convert("RGB")
    canvas = Image.new("RGB", size, (118, 124, 130))
    if face_px >= 400:
        # "Closer": the head and shoulders crop of the portrait, enlarged.
        crop = img.crop((120, 10, 340, 230)).resize((face_px, face_px), Image.Resampling.LANCZOS)
    else:
        crop = img.resize((face_px, face_px), Image.Resampling.LANCZOS)
    canvas.paste(crop, ((size[0] - face_px) // 2, (size[1] - face_px) // 2))
    return canvas


def darker(img: Image.Image, factor: float) -> Image.Image:
    """The same frame with less light (night, a dim doorway)."""
    from PIL import ImageEnhance

    return ImageEnhance.Brightness(img).enhance(factor)


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@dataclass
class Server:
    url: str
    workspace: Path
    passwords: dict[str, str]
    capture: tuple[int, int]
    #: The served workspace (the tests read its audit log after the session).
    ws: Any = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BASE_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def launch(playwright: object, *, video: Path | None, allow_camera: bool = True) -> object:
    """Chromium with a fake camera playing ``video``; ``allow_camera=False`` denies it."""
    args = list(BASE_ARGS)
    if video is not None:
        args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    args += ["--use-fake-ui-for-media-stream"] if allow_camera else ["--deny-permission-prompts"]
    return playwright.chromium.launch(  # type: ignore[attr-defined]
        executable_path=str(CHROMIUM), headless=True, args=args
    )


def phone_context(browser: Any, server: Server, **options: Any) -> Any:
    """A phone-sized context whose requests may go only to the test server; every request that
    tried to leave the machine is kept in ``ctx.blocked``. ``options`` go to ``new_context``
    (e.g. ``service_workers="block"``, so that page routes see every request)."""
    ctx = browser.new_context(
        viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True, **options
    )
    ctx.set_default_timeout(20_000)
    blocked: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    ctx.blocked = blocked  # every request that tried to leave the machine
    return ctx


def login(page: Any, server: Server, name: str) -> None:
    page.goto(server.url + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", server.passwords[name])
    page.click("button[type=submit]")


def start(page: Any, case: str) -> None:
    """From the start page: purpose, case, notice given, on to the capture page."""
    page.wait_for_url("**/start")
    page.select_option("[data-testid=purpose]", "field-identification")
    page.fill("[data-testid=case-ref]", case)
    page.check("[data-testid=notice]")
    page.click("[data-testid=to-capture]")
    page.wait_for_url("**/capture?*")


def shot(page: Any, artifacts: Path, name: str, *, full_page: bool = True) -> Path:
    """A screenshot for a person to look at (``full_page=False``: the phone's first screen)."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 5_000
    return path
