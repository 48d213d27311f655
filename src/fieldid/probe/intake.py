"""Probe intake: turn the bytes of a submitted photo into an upright RGB ``uint8`` image, or refuse.

``decode_probe`` is the only way a probe photo enters the pipeline. It accepts JPEG, PNG and WebP
(nothing else), checks sizes *before* decoding pixels, forces a full decode so a damaged file is
refused rather than half-read, applies the EXIF orientation, and normalises every colour mode to
``H×W×3`` RGB ``uint8``.

Order of checks: input bytes (size, emptiness) → container format (magic bytes) → header
dimensions (pixels, longest side, shortest side) → full pixel decode → orientation → colour.

Reason codes (all raised as :class:`fieldid.errors.ProbeRejected`; ``details`` always carries the
measured values and, where one applies, the limit that was crossed):

========================  ===================================================================
code                      meaning
========================  ===================================================================
``probe.empty``           the input has zero bytes
``probe.not_found``       the path does not exist
``probe.not_a_file``      the path exists but is a directory or other non-regular file
``probe.unreadable``      the file exists but could not be read (permissions, I/O error)
``probe.too_large_bytes`` the file is bigger than ``IntakeLimits.max_bytes``
``probe.too_many_pixels`` the header declares more than ``IntakeLimits.max_pixels`` pixels
                          (including Pillow's own decompression-bomb guard)
``probe.side_too_large``  the header declares a side longer than ``IntakeLimits.max_side``
``probe.too_small``       a side is shorter than ``IntakeLimits.min_side``
``probe.unsupported_format``  a recognised image format other than JPEG/PNG/WebP (GIF, BMP,
                          TIFF, HEIC, AVIF, ...), or a colour mode that cannot be converted
``probe.not_an_image``    the bytes are not any recognised image format
``probe.truncated``       the file ends before the image data does (cut-off upload or copy)
``probe.corrupt``         the file claims to be JPEG/PNG/WebP but cannot be decoded
========================  ===================================================================

Colour handling: grayscale (``1``, ``L``) is replicated to three channels; palette (``P``,
``PA``), ``LA``, ``RGBA`` and any ``tRNS`` transparency are composited over white; CMYK JPEGs
(including Adobe-inverted ones) go through Pillow's CMYK→RGB conversion; 16-bit grayscale
(``I;16*``, ``I``) is scaled with ``round(v / 257)`` so 65535→255 and 32896→128; 16-bit colour PNGs
(which Pillow 13 opens as 8-bit ``RGB``/``RGBA`` by keeping only the high byte) are re-read at full
precision with OpenCV after Pillow has validated the file, and scaled the same way; ``F`` is
clipped to 0–255 and rounded, as Pillow does when converting ``F`` to ``L``.

Orientation: the EXIF orientation tag (or XMP ``tiff:Orientation``, which Pillow folds into
``getexif()``) is applied with the same transpose table as :func:`PIL.ImageOps.exif_transpose`.
Unreadable EXIF is ignored (orientation 1) rather than refusing an otherwise good photo.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, UnidentifiedImageError

from fieldid.errors import ProbeRejected

__all__ = ["IntakeLimits", "ProbeFormat", "ProbeImage", "decode_probe", "read_probe_bytes"]

ProbeFormat = Literal["JPEG", "PNG", "WEBP"]

_MIB: Final = 1024 * 1024
_ACCEPTED: Final = "send the photo as a JPEG, PNG or WebP"
_ORIENTATION_TAG: Final = 0x0112

#: EXIF orientation value → the transpose that makes the stored pixels upright (same table as
#: ``PIL.ImageOps.exif_transpose``).
_TRANSPOSE: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

#: Leading bytes of formats we recognise but refuse, so the refusal can name them.
_OTHER_FORMATS: Final[tuple[tuple[bytes, str], ...]] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"qoif", "QOI"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "HDR"),
)
_FTYP_BRANDS: Final[dict[bytes, str]] = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"hevc": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
_PNM: Final = re.compile(rb"\AP[1-7]\s")


@dataclass(frozen=True)
class IntakeLimits:
    """What intake accepts. Defaults suit phone and camera photos with a wide margin."""

    max_bytes: int = 20 * _MIB
    max_pixels: int = 40_000_000
    max_side: int = 12_000
    min_side: int = 32

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side", "min_side"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"IntakeLimits.{name} must be a positive integer, got {value!r}")
        if self.min_side > self.max_side:
            raise ValueError(
                f"IntakeLimits.min_side ({self.min_side}) exceeds max_side ({self.max_side})"
            )


@dataclass(frozen=True)
class ProbeImage:
    """A decoded, upright probe photo.

    ``rgb`` is read-only (``H×W×3``, ``uint8``, C-contiguous); copy it before changing pixels.
    Equality compares the metadata (including ``sha256``), not the pixel array.
    """

    rgb: NDArray[np.uint8] = field(repr=False, compare=False)
    format: ProbeFormat
    #: ``(width, height)`` as stored in the file, before the orientation was applied.
    original_size: tuple[int, int]
    #: The EXIF orientation value that was applied (1–8); 1 when there was none.
    orientation_applied: int
    #: Hex SHA-256 of the input bytes exactly as received.
    sha256: str
    byte_size: int

    def __post_init__(self) -> None:
        rgb = self.rgb
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"ProbeImage.rgb must be H×W×3 uint8, got {rgb.dtype} {rgb.shape}")
        if not rgb.flags.c_contiguous:
            raise ValueError("ProbeImage.rgb must be C-contiguous")

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_probe(
    source: bytes | bytearray | memoryview | str | os.PathLike[str],
    limits: IntakeLimits | None = None,
) -> ProbeImage:
    """Decode a probe photo from its bytes or a file path, or raise :class:`ProbeRejected`.

    See the module docstring for the reason codes and the colour and orientation rules.
    """
    limits = limits or IntakeLimits()
    data = _read_source(source, limits)
    fmt = _sniff_format(data)
    with _quiet_pillow(), _open(data, fmt, limits) as im:
        original_size = (int(im.size[0]), int(im.size[1]))
        _check_dimensions(original_size, limits)
        _load_fully(im, data, fmt)  # before the orientation: a PNG's EXIF may follow its pixels
        orientation = _orientation(im)
        sixteen = fmt == "PNG" and _is_16bit_colour_png(data)
        rgb = None if sixteen else _to_rgb(im)
    if rgb is None:  # Pillow's pixels are released before OpenCV decodes all 16 bits
        rgb = _exact_16bit_png(data, original_size)
        if rgb is None:
            with _quiet_pillow(), _open(data, fmt, limits) as im:
                _load_fully(im, data, fmt)
                rgb = _to_rgb(im)
    if orientation != 1:
        rgb = _upright(rgb, orientation)
    rgb.flags.writeable = False
    return ProbeImage(
        rgb=rgb,
        format=fmt,
        original_size=original_size,
        orientation_applied=orientation,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
    )


def _upright(rgb: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """The EXIF orientation applied with NumPy views and one copy (same table as Pillow's
    ``exif_transpose``: 2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 270° (i.e. 90°
    clockwise), 7 transverse, 8 rotate 90°)."""
    view = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }[orientation](rgb)
    return np.ascontiguousarray(view)


# --- reading ------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / _MIB:.1f} MB"


def _too_large_bytes(size: int, limits: IntakeLimits) -> ProbeRejected:
    return ProbeRejected(
        f"the photo is {_mib(size)}; the limit is {_mib(limits.max_bytes)}: send a smaller JPEG "
        "(lower quality or resize so the longest side is about 4000 pixels)",
        code="probe.too_large_bytes",
        byte_size=size,
        max_bytes=limits.max_bytes,
    )


def read_probe_bytes(
    source: bytes | bytearray | memoryview | str | os.PathLike[str], limits: IntakeLimits
) -> bytes:
    """The bytes of a probe (a path is read up to the limit), refused as ``decode_probe`` would
    refuse them before decoding (empty, too large, not found, unreadable)."""
    return _read_source(source, limits)


def _read_source(
    source: bytes | bytearray | memoryview | str | os.PathLike[str], limits: IntakeLimits
) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | os.PathLike):
        data = _read_path(os.fspath(source), limits)
    else:
        raise TypeError(f"decode_probe takes bytes or a path, not {type(source).__name__}")
    if not data:
        raise ProbeRejected(
            "the photo is empty (0 bytes): the upload or copy failed; send the file again",
            code="probe.empty",
            byte_size=0,
        )
    if len(data) > limits.max_bytes:
        raise _too_large_bytes(len(data), limits)
    return data


def _read_path(path: str, limits: IntakeLimits) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ProbeRejected(
            f"no file at {path!r}: check the path and that the photo was copied in full",
            code="probe.not_found",
            path=path,
        ) from None
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ProbeRejected(
            f"{path!r} is {kind}: give the path of the photo file itself",
            code="probe.not_a_file",
            path=path,
        )
    if st.st_size > limits.max_bytes:
        raise _too_large_bytes(st.st_size, limits)
    try:
        with open(path, "rb") as fh:
            # Never read past the limit, even if the file grew since stat().
            data = fh.read(limits.max_bytes + 1)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return data


def _unreadable(path: str, exc: OSError) -> ProbeRejected:
    return ProbeRejected(
        f"could not read {path!r} ({exc.strerror or exc}): check the file's permissions, "
        "or copy it somewhere readable and try again",
        code="probe.unreadable",
        path=path,
        errno=exc.errno,
    )


# --- format -------------------------------------------------------------------------------------


def _sniff_format(data: bytes) -> ProbeFormat:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and b"WEBP".startswith(data[8:12]):  # a cut-off WebP is still WebP
        return "WEBP"
    other = _other_format(data)
    if other is not None:
        raise ProbeRejected(
            f"the photo is a {other} file, which is not accepted: {_ACCEPTED} "
            "(on a phone, export or share it as JPEG)",
            code="probe.unsupported_format",
            detected_format=other,
            accepted=["JPEG", "PNG", "WEBP"],
        )
    raise ProbeRejected(
        f"the data is not a recognisable image (starts with {data[:8].hex()}): {_ACCEPTED}; "
        "if it is one, the file was damaged in transfer — send it again",
        code="probe.not_an_image",
        byte_size=len(data),
        leading_bytes=data[:16].hex(),
        accepted=["JPEG", "PNG", "WEBP"],
    )


def _other_format(data: bytes) -> str | None:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "ISO media (HEIC/AVIF/MP4)")
    if data[:4] == b"RIFF":
        return "RIFF (not WebP)"
    if _PNM.match(data[:3]):
        return "PNM"
    return None


# --- header and decode --------------------------------------------------------------------------


_BOMB_PIXELS: Final = re.compile(r"\((\d+) pixels\)")


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Keep Pillow's advisory warnings out of the caller's way (and out of ``-W error`` runs).

    ``DecompressionBombWarning`` only fires above ``Image.MAX_IMAGE_PIXELS``, where our own pixel
    limit decides; Pillow's ``UserWarning``s (e.g. "Corrupt EXIF data") are not actionable here —
    a damaged file is refused by the full decode, and unreadable EXIF means orientation 1.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
        yield


def _open(data: bytes, fmt: ProbeFormat, limits: IntakeLimits) -> Image.Image:
    """Read the header only (no pixels), with Pillow's bomb guard turned into our error."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone flipped the global; we will not return partial images.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False for intake")
    formats: list[str] = [fmt]  # "JPEG" also yields MPO (multi-picture) camera files
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:
        match = _BOMB_PIXELS.search(str(exc))
        pixels = int(match.group(1)) if match else None
        # Pillow refuses above 2 × MAX_IMAGE_PIXELS; that is the effective limit if it is lower.
        pillow_limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else limits.max_pixels
        limit = min(limits.max_pixels, pillow_limit)
        shown = f"{pixels / 1e6:.1f} megapixels" if pixels else "too many pixels"
        raise ProbeRejected(
            f"the photo declares {shown}; the limit is {limit / 1e6:g} megapixels: send a "
            "smaller photo (resize so the longest side is about 4000 pixels)",
            code="probe.too_many_pixels",
            pixels=pixels,
            max_pixels=limit,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_failure(data, fmt, exc) from None


def _check_dimensions(size: tuple[int, int], limits: IntakeLimits) -> None:
    w, h = size
    pixels = w * h
    details: dict[str, Any] = {"width": w, "height": h}
    if pixels > limits.max_pixels:
        raise ProbeRejected(
            f"the photo is {w}×{h} ({pixels / 1e6:.1f} megapixels); the limit is "
            f"{limits.max_pixels / 1e6:g} megapixels: send a smaller photo "
            "(resize so the longest side is about 4000 pixels)",
            code="probe.too_many_pixels",
            pixels=pixels,
            max_pixels=limits.max_pixels,
            **details,
        )
    if max(w, h) > limits.max_side:
        raise ProbeRejected(
            f"the photo is {w}×{h}; the longest side may be at most {limits.max_side} pixels: "
            "crop or resize it (a panorama or stitched image will not work as a probe)",
            code="probe.side_too_large",
            max_side=limits.max_side,
            **details,
        )
    if min(w, h) < limits.min_side:
        raise ProbeRejected(
            f"the photo is only {w}×{h}; each side must be at least {limits.min_side} pixels: "
            "send the original photo rather than a thumbnail or a crop",
            code="probe.too_small",
            min_side=limits.min_side,
            **details,
        )


def _load_fully(im: Image.Image, data: bytes, fmt: ProbeFormat) -> None:
    try:
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise _decode_failure(data, fmt, exc) from None


def _truncated(fmt: ProbeFormat, size: int, expected: int | None = None) -> ProbeRejected:
    return ProbeRejected(
        f"the {fmt} file is cut off ({size} bytes received"
        + (f" of {expected}" if expected else "")
        + "): the upload or copy did not finish; send the complete file again",
        code="probe.truncated",
        format=fmt,
        byte_size=size,
        expected_bytes=expected,
    )


def _decode_failure(data: bytes, fmt: ProbeFormat, exc: BaseException) -> ProbeRejected:
    reason = str(exc) or type(exc).__name__
    if fmt == "WEBP":  # libwebp's errors are generic; the RIFF header says how long it should be
        declared = int.from_bytes(data[4:8], "little") + 8
        if declared > len(data):
            return _truncated(fmt, len(data), declared)
    if isinstance(exc, EOFError) or "truncated" in reason.lower():
        return _truncated(fmt, len(data))
    return ProbeRejected(
        f"the file looks like a {fmt} but cannot be decoded ({reason}): it is damaged; "
        "send the original photo again, or re-save it as a JPEG",
        code="probe.corrupt",
        format=fmt,
        byte_size=len(data),
        reason=reason,
    )


def _orientation(im: Image.Image) -> int:
    try:
        value: object = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF must not sink an otherwise good photo
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


# --- colour -------------------------------------------------------------------------------------

#: Rows converted at a time: conversions that need temporaries (alpha, 16-bit, CMYK) hold a few
#: MB of them at once rather than several copies of a 40-megapixel image.
_STRIP_ROWS: Final = 256


def _scale16(a: NDArray[Any]) -> NDArray[np.uint8]:
    """0–65535 → 0–255 with rounding (``round(v / 257)``): 65535→255, 32896→128."""
    wide: NDArray[np.uint32] = np.clip(a, 0, 65535).astype(np.uint32)
    scaled: NDArray[np.uint8] = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return scaled


def _over_white(rgba: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Composite straight-alpha ``H×W×4`` over white, in integers."""
    colour = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:4].astype(np.uint16)
    out = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _gray_to_rgb(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.repeat(gray[..., None], 3, axis=2)


def _to_rgb(im: Image.Image) -> NDArray[np.uint8]:
    """The whole image as a new ``H×W×3`` uint8 array, converted strip by strip so that the
    temporaries never exceed a strip's worth."""
    w, h = im.size
    out = np.empty((h, w, 3), dtype=np.uint8)
    if im.mode == "RGB" and "transparency" not in im.info:
        for y in range(0, h, _STRIP_ROWS):  # no whole-image intermediate copy
            out[y : y + _STRIP_ROWS] = np.asarray(
                im.crop((0, y, w, min(h, y + _STRIP_ROWS))), dtype=np.uint8
            )
        return out
    for y in range(0, h, _STRIP_ROWS):
        strip = im.crop((0, y, w, min(h, y + _STRIP_ROWS)))  # keeps the palette and tRNS
        out[y : y + _STRIP_ROWS] = _strip_to_rgb(strip)
    return out


def _strip_to_rgb(im: Image.Image) -> NDArray[np.uint8]:
    mode = im.mode
    has_trns = "transparency" in im.info
    if mode == "RGB" and not has_trns:
        return np.asarray(im, dtype=np.uint8)
    if mode == "L" and not has_trns:
        return _gray_to_rgb(np.asarray(im, dtype=np.uint8))
    if mode == "1":
        return _gray_to_rgb(np.asarray(im.convert("L"), dtype=np.uint8))
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (32-bit) hold 16-bit samples here
        raw = np.asarray(im)
        gray = _scale16(raw)
        rgb = _gray_to_rgb(gray)
        trns = im.info.get("transparency")
        if isinstance(trns, int):
            rgb[raw == trns] = 255
        return rgb
    if mode == "F":
        values = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0)
        return _gray_to_rgb(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "P", "PA", "La", "RGBa") or has_trns:
        return _over_white(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    try:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)  # CMYK, YCbCr, RGBX, LAB, HSV
    except (ValueError, OSError) as exc:
        raise ProbeRejected(
            f"the photo uses the {mode} colour mode, which cannot be converted to RGB: "
            f"re-save it as an ordinary RGB JPEG ({exc})",
            code="probe.unsupported_format",
            mode=mode,
        ) from None


def _is_16bit_colour_png(data: bytes) -> bool:
    """A 16-bit RGB, RGBA or gray+alpha PNG (Pillow keeps only the high byte of these)."""
    return len(data) >= 26 and data[12:16] == b"IHDR" and data[24] == 16 and data[25] in (2, 4, 6)


def _exact_16bit_png(data: bytes, size: tuple[int, int]) -> NDArray[np.uint8] | None:
    """Full-precision RGB for 16-bit colour / gray+alpha PNGs; ``None`` for every other PNG.

    OpenCV's PNG reader returns all 16 bits. Called after Pillow has fully decoded (and so
    validated) the same bytes and let its pixels go; the scaling runs strip by strip into one
    output array.
    """
    if not _is_16bit_colour_png(data):
        return None
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    w, h = size
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != (h, w):
        return None
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels not in (1, 2, 3, 4):
        return None
    out = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, _STRIP_ROWS):
        scaled = _scale16(decoded[y : y + _STRIP_ROWS])
        if channels == 1:
            rgb = _gray_to_rgb(scaled)
        elif channels == 3:
            rgb = scaled[..., ::-1]
        elif channels == 4:
            rgb = _over_white(np.ascontiguousarray(scaled[..., [2, 1, 0, 3]]))
        else:
            rgb = _over_white(np.ascontiguousarray(scaled[..., [0, 0, 0, 1]]))
        out[y : y + _STRIP_ROWS] = rgb
    return out
