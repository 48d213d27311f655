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


def phone_context(browser: Any, server: Server) -> Any:
    """A phone-sized context whose requests may go only to the test server; every request that
    tried to leave the machine is kept in ``ctx.blocked``."""
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
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
