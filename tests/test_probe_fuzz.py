"""Property-based fuzzing of probe intake (hypothesis): whatever the bytes, ``decode_probe``
returns an upright ``H×W×3`` uint8 image or refuses with ``ProbeRejected``; nothing else escapes.

Inputs: valid JPEG, PNG (RGB, palette, 16-bit, grey + alpha, interlaced) and WebP files, mutated
(bytes flipped, cut, inserted or repeated, PNG dimensions rewritten with a correct CRC), and raw
bytes behind each format's magic. Bounded: a fixed number of examples, derandomised.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fieldid.errors import ProbeRejected
from fieldid.probe import IntakeLimits, ProbeImage, decode_probe

LIMITS = IntakeLimits(max_pixels=2_000_000, max_side=4000, min_side=8)


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    out = []
    for fmt, kw in [
        ("JPEG", {"quality": 80}),
        ("JPEG", {"quality": 80, "progressive": True}),
        ("PNG", {}),
        ("PNG", {"interlace": 1}),
        ("WEBP", {"quality": 70}),
        ("WEBP", {"lossless": True}),
    ]:
        buf = io.BytesIO()
        rgb.save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    for mode in ("P", "LA", "RGBA", "I;16", "1", "CMYK"):
        buf = io.BytesIO()
        im = rgb.convert("L").convert(mode) if mode == "I;16" else rgb.convert(mode)
        im.save(buf, format="JPEG" if mode == "CMYK" else "PNG")
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    if not data.startswith(b"\x89PNG") or data[12:16] != b"IHDR":
        return data
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:16] + ihdr + crc + data[33:]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "size"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 4096))]
        elif kind == "size":
            w = draw(st.integers(0, 70000))
            h = draw(st.integers(0, 70000))
            data = bytearray(_png_with_size(bytes(data), w, h))
    return bytes(data)


MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a", b""]
raw = st.builds(lambda m, b: m + b, st.sampled_from(MAGIC), st.binary(max_size=2048))


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.one_of(mutated(), raw))
def test_intake_decodes_or_refuses_and_nothing_else(data: bytes) -> None:
    try:
        probe = decode_probe(data, LIMITS)
    except ProbeRejected as e:
        assert e.code.startswith("probe.") and e.message
        return
    assert isinstance(probe, ProbeImage)
    assert probe.rgb.dtype == np.uint8 and probe.rgb.ndim == 3 and probe.rgb.shape[2] == 3
    assert probe.width * probe.height <= LIMITS.max_pixels
    assert not probe.rgb.flags.writeable
