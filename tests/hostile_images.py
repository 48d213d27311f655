"""A generated set of hostile and unusual probe files (made here, never downloaded).

Each :class:`Case` carries the bytes, what a well-behaved service answers (``codes``: the refusal
codes accepted, or ``None`` when the photo should be taken in and searched) and why it is in the
set. The benchmark ``benchmarks/bench_hostile.py`` uses :func:`no_face_12mp_jpeg` and
:func:`zero_png` too.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "fieldid" / "demo" / "astronaut.jpg"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    #: Refusal codes that are a right answer; None: the photo must be taken in (a search runs).
    codes: frozenset[str] | None
    why: str


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def zero_png(width: int, height: int, colour_type: int = 2, depth: int = 8) -> bytes:
    """A PNG of zeros, compressed row by row (a 6300×6300 one is ~116 KB and decodes to 119 MB):
    the decompression bomb that stays under the megapixel limit."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * depth // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    out = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    )
    if colour_type == 3:
        out += _chunk(b"PLTE", b"\x00\x00\x00")
    return out + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def ztxt_bomb_png() -> bytes:
    """A small valid PNG with a zTXt chunk that inflates to 64 MB of text."""
    base = zero_png(64, 64)
    comp = zlib.compressobj(9)
    text = b"".join(comp.compress(b"A" * (1 << 20)) for _ in range(64)) + comp.flush()
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + text)
    return base[:33] + bomb + base[33:]  # after IHDR (8 + 25 bytes)


def gif_bomb() -> bytes:
    """A GIF whose logical screen is 65535×65535 (GIF is refused before anything is decoded)."""
    header = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    image = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
    return header + image + b"\x02\x02\x4c\x01\x00;"


def jpeg_huge_header(width: int = 60000, height: int = 60000) -> bytes:
    """A JPEG whose frame header declares ``width × height`` (no real scan data follows)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def _encode(rgb: np.ndarray | Image.Image, fmt: str, **kw: object) -> bytes:
    im = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def astronaut() -> Image.Image:
    """The demo portrait as a closer capture (it passes the default quality gate and matches
    the portrait enrolled in the demo gallery)."""
    from fieldid.demo import closer_crop

    return Image.open(io.BytesIO(closer_crop(ASTRONAUT))).convert("RGB")


def no_face_12mp_jpeg(kind: str = "scene", seed: int = 1) -> bytes:
    """A 4000×3000 JPEG (quality 90) with no face in it.

    ``scene``: four photographs of things (scikit-image's coffee cup, rocket, cat and a gravel
    path), enlarged into the quadrants, with sensor noise: the detector finds nothing face-like.
    ``texture``: smooth colour fields, edges and texture at several scales with sensor noise,
    which the detector scores as near-misses, so the fallback detector looks too: the slowest
    way to find no face.
    """
    rng = np.random.default_rng(seed)
    if kind == "scene":
        import skimage.data as sk

        gravel = np.stack([sk.gravel()] * 3, axis=-1)
        quads = [sk.coffee(), sk.rocket(), sk.chelsea(), gravel]
        cells = [
            np.asarray(Image.fromarray(q).resize((2000, 1500), Image.Resampling.BICUBIC))
            for q in quads
        ]
        px = np.concatenate(
            [np.concatenate(cells[:2], axis=1), np.concatenate(cells[2:], axis=1)], axis=0
        ).astype(np.int16)
    else:
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        px = np.asarray(
            Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.int16
        )
        mid = np.asarray(
            Image.fromarray(rng.integers(0, 256, (150, 200), dtype=np.uint8)).resize(
                (4000, 3000), Image.Resampling.BILINEAR
            ),
            dtype=np.int16,
        )
        px = px + (mid[..., None] - 128) // 3
    px = px + rng.integers(-6, 7, (3000, 4000, 1), dtype=np.int16)
    return _encode(np.clip(px, 0, 255).astype(np.uint8), "JPEG", quality=90)


def gps_jpeg(marker: str) -> bytes:
    """The astronaut portrait as a JPEG carrying everything a phone might add and more: EXIF
    with camera make and model, GPS position, a user comment, an XMP packet, a JPEG comment, and
    a payload appended after the end of the image. ``marker`` is written into each."""
    im = astronaut()
    exif = Image.Exif()
    exif[0x010F] = f"Make-{marker}"  # Make
    exif[0x0110] = f"Model-{marker}"  # Model
    exif[0x0131] = f"Software-{marker}"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 26.0)
    gps[3] = "W"
    gps[4] = (0.0, 7.0, 39.0)
    gps[0x1B] = f"GPSProcessing-{marker}".encode()
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
        '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="XMP-{marker}"/>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()
    data = _encode(im, "JPEG", quality=92, exif=exif.tobytes(), xmp=xmp, comment=f"COM-{marker}")
    return data + f"PK\x03\x04 APPENDED-{marker} <script>alert(1)</script>".encode()


def oriented(orientation: int) -> bytes:
    """The astronaut stored so that EXIF ``orientation`` makes it upright again."""
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    im = astronaut()
    stored = im if inverse is None else im.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def hostile_cases() -> list[Case]:
    """The set, quickest first. Refusal codes are the ones docs/security.md lists."""
    portrait = astronaut()
    good = _encode(portrait, "JPEG", quality=92)
    png = _encode(portrait, "PNG")
    webp = _encode(portrait, "WEBP", quality=90)
    rgb16 = (np.asarray(portrait, dtype=np.uint16) * 257)[..., ::-1]  # BGR for OpenCV
    import cv2

    ok, png16 = cv2.imencode(".png", np.ascontiguousarray(rgb16))
    assert ok
    cmyk = _encode(portrait.convert("CMYK"), "JPEG", quality=92)
    found: frozenset[str] | None = None  # the photo is taken in
    big = frozenset({"probe.too_many_pixels", "probe.side_too_large"})
    no_face = frozenset({"acquire.no_face"})
    refused_image = frozenset({"probe.corrupt", "probe.truncated"})
    cases = [
        Case("empty", b"", frozenset({"probe.empty"}), "zero bytes"),
        Case("text", b"hello, this is not a photo\n" * 10, frozenset({"probe.not_an_image"}), ""),
        Case(
            "html",
            b"<!doctype html><script>alert(1)</script>",
            frozenset({"probe.not_an_image"}),
            "markup",
        ),
        Case("zip", b"PK\x03\x04" + b"\x00" * 200, frozenset({"probe.not_an_image"}), "archive"),
        Case("pdf", b"%PDF-1.7\n" + b"0" * 100, frozenset({"probe.unsupported_format"}), ""),
        Case("truncated-jpeg", good[: len(good) // 2], refused_image, "cut-off upload"),
        Case("truncated-png", png[: len(png) // 2], refused_image, "cut-off upload"),
        Case("truncated-webp", webp[: len(webp) // 2], refused_image, "cut-off upload"),
        Case("header-only-jpeg", good[:200], refused_image, "only the headers"),
        Case("gif-bomb-65535", gif_bomb(), frozenset({"probe.unsupported_format"}), "GIF bomb"),
        Case("jpeg-60000x60000", jpeg_huge_header(), big, "declares 3.6 gigapixels"),
        Case("png-bomb-20000x20000", zero_png(20000, 20000, 0), big, "400 MP of zeros, 1 MB"),
        Case("webp-16383x16383", webp_huge_header(), big, "WebP's largest, 268 MP"),
        Case("png-side-13000x100", zero_png(13000, 100), big, "a side past the limit"),
        Case("tiny-16x16", zero_png(16, 16), frozenset({"probe.too_small"}), "a thumbnail"),
        Case(
            "ztxt-bomb",
            ztxt_bomb_png(),
            refused_image | no_face | frozenset({"probe.too_small"}),
            "64 MB of compressed text",
        ),
        Case("jpeg", good, found, "the portrait, as a control"),
        Case("png", png, found, "lossless"),
        Case("webp", webp, found, "WebP"),
        Case("png-16bit", png16.tobytes(), found, "16 bits per channel"),
        Case("jpeg-cmyk", cmyk, found, "CMYK (print workflow)"),
        Case("polyglot-jpeg-zip-html", gps_jpeg("POLYGLOT"), found, "EXIF, GPS, appended payload"),
        *[
            Case(f"exif-orientation-{o}", oriented(o), found, "stored rotated or mirrored")
            for o in range(1, 9)
        ],
        Case("no-face-12mp-jpeg", no_face_12mp_jpeg(), no_face, "a large photo of no one"),
        Case(
            "no-face-12mp-texture",
            no_face_12mp_jpeg("texture"),
            no_face,
            "near-misses everywhere: the fallback looks too",
        ),
        Case("png-zeros-6300x6300", zero_png(6300, 6300), no_face, "39.7 MP bomb under the limit"),
        Case(
            "png-palette-6300x6300",
            zero_png(6300, 6300, 3),
            no_face,
            "39.7 MP palette bomb",
        ),
        Case(
            "png-16bit-rgba-4000x4000",
            zero_png(4000, 4000, 6, 16),
            no_face,
            "16 MP at 64 bits per pixel",
        ),
        Case("webp-bomb-6000x6000", webp_zeros(6000, 6000), no_face, "36 MP WebP, a few KB"),
    ]
    return cases


def webp_huge_header(width: int = 16383, height: int = 16383) -> bytes:
    """A lossless WebP header declaring ``width × height`` (268 MP at most), with no pixels."""
    bits = (width - 1) | ((height - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def webp_zeros(width: int, height: int) -> bytes:
    """A lossless WebP of one colour (a few kilobytes for tens of megapixels)."""
    return _encode(Image.new("RGB", (width, height)), "WEBP", lossless=True)
