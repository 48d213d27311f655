"""Probe intake: formats, orientation, colour modes, limits and refusals, on real encoded files."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageFile

from fieldid.errors import ProbeRejected
from fieldid.probe import IntakeLimits, ProbeImage, decode_probe
from fieldid.probe import intake as intake_module

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)
YELLOW = (255, 255, 0)
WHITE = (255, 255, 255)

H, W = 48, 64  # non-square, so a missing or extra rotation changes the shape


def quadrants() -> NDArray[np.uint8]:
    """Upright test card: top-left red, top-right blue, bottom-left green, bottom-right yellow."""
    a = np.zeros((H, W, 3), np.uint8)
    a[: H // 2, : W // 2] = RED
    a[: H // 2, W // 2 :] = BLUE
    a[H // 2 :, : W // 2] = GREEN
    a[H // 2 :, W // 2 :] = YELLOW
    return a


def assert_quadrants(rgb: NDArray[np.uint8], tol: int = 0) -> None:
    assert rgb.shape == (H, W, 3)
    h2, w2, m = H // 2, W // 2, 6  # sample well inside each quadrant (JPEG blurs edges)
    for (ys, xs), colour in [
        ((slice(m, h2 - m), slice(m, w2 - m)), RED),
        ((slice(m, h2 - m), slice(w2 + m, W - m)), BLUE),
        ((slice(h2 + m, H - m), slice(m, w2 - m)), GREEN),
        ((slice(h2 + m, H - m), slice(w2 + m, W - m)), YELLOW),
    ]:
        block = rgb[ys, xs].astype(int)
        assert np.abs(block - np.array(colour)).max() <= tol, (colour, block.mean(axis=(0, 1)))


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def handmade_png(
    w: int, h: int, depth: int, ctype: int, rows: list[bytes], extra: bytes = b""
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 on every row
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def rejected(source: Any, code: str, limits: IntakeLimits | None = None) -> ProbeRejected:
    with pytest.raises(ProbeRejected) as info:
        decode_probe(source, limits)
    err = info.value
    assert err.code == code, err
    assert err.message and ":" in err.message  # says what happened, then what to do
    assert err.to_dict()["code"] == code
    return err


# --- formats ------------------------------------------------------------------------------------

FORMATS: list[tuple[str, dict[str, Any], int]] = [
    ("JPEG", {"quality": 95}, 12),
    ("PNG", {}, 0),
    ("WEBP", {"lossless": True}, 0),
    ("WEBP", {"quality": 90}, 16),
]


@pytest.mark.parametrize(("fmt", "kw", "tol"), FORMATS)
def test_each_format_decodes_from_bytes_and_path(
    tmp_path: Path, fmt: str, kw: dict[str, Any], tol: int
) -> None:
    data = encode(Image.fromarray(quadrants()), fmt, **kw)
    path = tmp_path / f"probe.{fmt.lower()}"
    path.write_bytes(data)
    for source in (data, bytearray(data), str(path), path):
        probe = decode_probe(source)
        assert isinstance(probe, ProbeImage)
        assert probe.format == fmt
        assert probe.rgb.dtype == np.uint8 and probe.rgb.flags.c_contiguous
        assert not probe.rgb.flags.writeable
        assert (probe.width, probe.height) == (W, H) == probe.original_size
        assert probe.orientation_applied == 1
        assert probe.byte_size == len(data)
        assert probe.sha256 == hashlib.sha256(data).hexdigest()
        assert_quadrants(probe.rgb, tol)


def test_astronaut_jpeg_and_webp_round_trip(tmp_path: Path) -> None:
    from skimage import data as skdata

    face = np.ascontiguousarray(skdata.astronaut())  # type: ignore[no-untyped-call]
    for fmt, kw in (("JPEG", {"quality": 95}), ("WEBP", {"quality": 95})):
        encoded = encode(Image.fromarray(face), fmt, **kw)
        (tmp_path / "a").write_bytes(encoded)
        for source in (encoded, tmp_path / "a"):
            probe = decode_probe(source)
            assert probe.rgb.shape == face.shape
            diff = np.abs(probe.rgb.astype(int) - face.astype(int))
            assert diff.mean() < 3.0, (fmt, diff.mean())
            # Channels in RGB order: the red suit patch stays red, not blue.
            assert np.corrcoef(probe.rgb[..., 0].ravel(), face[..., 0].ravel())[0, 1] > 0.99


# --- orientation --------------------------------------------------------------------------------


def stored_for(orientation: int, upright: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels a camera stores for ``upright`` with this EXIF orientation (per the EXIF spec)."""
    u = upright
    stored = {
        1: u,
        2: u[:, ::-1],  # mirrored horizontally
        3: u[::-1, ::-1],  # rotated 180
        4: u[::-1],  # mirrored vertically
        5: u.transpose(1, 0, 2),  # row 0 = visual left, column 0 = visual top
        6: np.rot90(u, 1),  # row 0 = visual right, column 0 = visual top (display: rotate CW)
        7: u[::-1, ::-1].transpose(1, 0, 2),  # row 0 = visual right, column 0 = visual bottom
        8: np.rot90(u, -1),  # row 0 = visual left, column 0 = visual bottom (display: rotate CCW)
    }[orientation]
    return np.ascontiguousarray(stored)


def with_orientation(stored: NDArray[np.uint8], orientation: int, fmt: str, **kw: Any) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(stored), fmt, exif=exif.tobytes(), **kw)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation: int) -> None:
    stored = stored_for(orientation, quadrants())
    data = with_orientation(stored, orientation, "JPEG", quality=95)
    probe = decode_probe(data)
    assert probe.orientation_applied == orientation
    assert probe.original_size == (stored.shape[1], stored.shape[0])
    assert_quadrants(probe.rgb, tol=12)
    assert probe.rgb.flags.c_contiguous


@pytest.mark.parametrize(("fmt", "kw"), [("PNG", {}), ("WEBP", {"lossless": True})])
@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_orientation_in_png_and_webp(fmt: str, kw: dict[str, Any], orientation: int) -> None:
    data = with_orientation(stored_for(orientation, quadrants()), orientation, fmt, **kw)
    probe = decode_probe(data)
    assert probe.orientation_applied == orientation
    assert_quadrants(probe.rgb)


def test_damaged_exif_means_no_rotation_not_refusal() -> None:
    good = encode(Image.fromarray(quadrants()), "JPEG", quality=95)
    junk_exif = b"Exif\x00\x00MM\x00*\xff\xff\xff\xf0" + b"\x01" * 20  # IFD offset past the end
    segment = b"\xff\xe1" + struct.pack(">H", len(junk_exif) + 2) + junk_exif
    probe = decode_probe(good[:2] + segment + good[2:])
    assert probe.orientation_applied == 1
    assert_quadrants(probe.rgb, tol=12)


def test_invalid_orientation_value_is_ignored() -> None:
    data = with_orientation(quadrants(), 9, "PNG")
    probe = decode_probe(data)
    assert probe.orientation_applied == 1
    assert_quadrants(probe.rgb)


# --- colour modes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "tol"), [("PNG", 0), ("JPEG", 3)])
def test_grayscale_becomes_three_equal_channels(fmt: str, tol: int) -> None:
    gray = np.tile(np.array([0, 77, 200, 255], np.uint8).repeat(16), (40, 1))
    probe = decode_probe(encode(Image.fromarray(gray, "L"), fmt))
    assert probe.rgb.shape == (40, 64, 3)
    assert (probe.rgb[..., 0] == probe.rgb[..., 1]).all()
    assert (probe.rgb[..., 1] == probe.rgb[..., 2]).all()
    for i, v in enumerate([0, 77, 200, 255]):
        assert abs(int(probe.rgb[20, 16 * i + 8, 0]) - v) <= tol


def test_bilevel_png() -> None:
    bits = Image.new("1", (40, 40), 0)
    bits.paste(1, (20, 0, 40, 40))
    probe = decode_probe(encode(bits, "PNG"))
    assert tuple(probe.rgb[5, 5]) == (0, 0, 0)
    assert tuple(probe.rgb[5, 35]) == WHITE


def test_palette_with_transparency_composites_over_white() -> None:
    pal = Image.new("P", (40, 40), 0)
    pal.putpalette([0, 0, 0, *RED, *BLUE] + [0] * (253 * 3))
    pal.paste(1, (0, 0, 20, 40))
    pal.paste(2, (20, 0, 40, 20))
    # index 0 (black) is transparent: the bottom-right quarter must come out white, not black
    probe = decode_probe(encode(pal, "PNG", transparency=0))
    assert tuple(probe.rgb[10, 10]) == RED
    assert tuple(probe.rgb[10, 30]) == BLUE
    assert tuple(probe.rgb[30, 30]) == WHITE


def test_palette_without_transparency() -> None:
    pal = Image.fromarray(quadrants()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert_quadrants(decode_probe(encode(pal, "PNG")).rgb)


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (W, H), (0, 255, 255, 0))  # red
    cmyk.paste((255, 255, 0, 0), (W // 2, 0, W, H))  # blue
    data = encode(cmyk, "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    probe = decode_probe(data)
    assert probe.format == "JPEG"
    assert np.abs(probe.rgb[H // 2, 8].astype(int) - RED).max() <= 8
    assert np.abs(probe.rgb[H // 2, W - 8].astype(int) - BLUE).max() <= 8


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_rgba_composited_over_white(fmt: str) -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[:, :20] = (*RED, 255)  # opaque red
    rgba[:, 20:40] = (*RED, 128)  # half-transparent red
    rgba[:, 40:] = (*BLUE, 0)  # fully transparent: colour must not leak through
    kw = {"lossless": True, "exact": True} if fmt == "WEBP" else {}
    probe = decode_probe(encode(Image.fromarray(rgba, "RGBA"), fmt, **kw))
    assert tuple(probe.rgb[20, 10]) == RED
    assert np.abs(probe.rgb[20, 30].astype(int) - (255, 127, 127)).max() <= 1
    assert tuple(probe.rgb[20, 50]) == WHITE


def test_la_png_composited_over_white() -> None:
    la = np.zeros((40, 40, 2), np.uint8)
    la[:, :20] = (50, 255)
    la[:, 20:] = (0, 0)
    probe = decode_probe(encode(Image.fromarray(la, "LA"), "PNG"))
    assert tuple(probe.rgb[10, 10]) == (50, 50, 50)
    assert tuple(probe.rgb[10, 30]) == WHITE


def test_16bit_grayscale_png(tmp_path: Path) -> None:
    gray = np.zeros((40, 40), np.uint16)
    gray[:, 10:20] = 32896
    gray[:, 20:30] = 1000  # 1000 / 257 = 3.9 → 4 (keeping only the high byte would give 3)
    gray[:, 30:] = 65535
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), gray)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    probe = decode_probe(path)
    assert [int(probe.rgb[5, x, 0]) for x in (5, 15, 25, 35)] == [0, 128, 4, 255]
    assert (probe.rgb[..., 0] == probe.rgb[..., 2]).all()


def test_16bit_rgb_png_full_precision(tmp_path: Path) -> None:
    rgb16 = np.zeros((40, 40, 3), np.uint16)
    rgb16[:, :20] = (65535, 32896, 1000)
    rgb16[:, 20:] = (257, 0, 65000)  # 65000 / 257 = 252.9 → 253
    path = tmp_path / "c16.png"
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb16[..., ::-1]))  # OpenCV writes BGR
    probe = decode_probe(path)
    assert tuple(probe.rgb[5, 5]) == (255, 128, 4)
    assert tuple(probe.rgb[5, 35]) == (1, 0, 253)


def test_16bit_rgba_png_composited(tmp_path: Path) -> None:
    rgba16 = np.zeros((40, 40, 4), np.uint16)
    rgba16[:, :20] = (65535, 0, 0, 65535)
    rgba16[:, 20:] = (0, 0, 65535, 0)
    path = tmp_path / "c16a.png"
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgba16[..., [2, 1, 0, 3]]))
    probe = decode_probe(path)
    assert tuple(probe.rgb[5, 5]) == RED
    assert tuple(probe.rgb[5, 35]) == WHITE


def test_16bit_gray_alpha_and_trns_pngs() -> None:
    row = struct.pack(">HH", 32896, 65535) * 16 + struct.pack(">HH", 0, 0) * 16
    probe = decode_probe(handmade_png(32, 32, 16, 4, [row] * 32))
    assert tuple(probe.rgb[3, 3]) == (128, 128, 128)
    assert tuple(probe.rgb[3, 20]) == WHITE

    row = struct.pack(">HHH", 65535, 0, 0) * 16 + struct.pack(">HHH", 0, 0, 65535) * 16
    trns = png_chunk(b"tRNS", struct.pack(">HHH", 0, 0, 65535))
    probe = decode_probe(handmade_png(32, 32, 16, 2, [row] * 32, trns))
    assert tuple(probe.rgb[3, 3]) == RED
    assert tuple(probe.rgb[3, 20]) == WHITE  # the tRNS colour is transparent

    row = struct.pack(">H", 1000) * 16 + struct.pack(">H", 40000) * 16
    trns = png_chunk(b"tRNS", struct.pack(">H", 1000))
    probe = decode_probe(handmade_png(32, 32, 16, 0, [row] * 32, trns))
    assert tuple(probe.rgb[3, 3]) == WHITE
    assert tuple(probe.rgb[3, 20]) == (156, 156, 156)  # 40000 / 257 = 155.6


def test_i_and_f_modes_convert() -> None:
    i32 = Image.fromarray(np.array([[0, 32896, 65535, 70000]], np.int32), "I")
    assert intake_module._to_rgb(i32)[0, :, 0].tolist() == [0, 128, 255, 255]
    f32 = Image.fromarray(np.array([[-3.0, 127.6, 300.0, np.nan]], np.float32), "F")
    assert intake_module._to_rgb(f32)[0, :, 0].tolist() == [0, 128, 255, 0]


# --- refusals -----------------------------------------------------------------------------------


def bomb_png(width: int, height: int) -> bytes:
    """A real 1×1 PNG whose IHDR is patched to declare ``width``×``height`` (CRC fixed up)."""
    data = bytearray(encode(Image.new("RGB", (1, 1), RED), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decompression_bomb_png_refused_fast() -> None:
    data = bomb_png(50_000, 50_000)
    assert len(data) < 100
    start = time.perf_counter()
    err = rejected(data, "probe.too_many_pixels")
    assert time.perf_counter() - start < 0.5
    assert err.details["pixels"] == 2_500_000_000
    assert err.details["max_pixels"] <= 40_000_000


def test_pillow_bomb_guard_becomes_typed_error() -> None:
    # Our limits would allow it; Pillow's own guard (2 × MAX_IMAGE_PIXELS) still refuses.
    generous = IntakeLimits(max_pixels=10**12, max_side=10**6)
    err = rejected(bomb_png(50_000, 50_000), "probe.too_many_pixels", generous)
    assert err.details["pixels"] == 2_500_000_000
    assert err.details["max_pixels"] == 2 * Image.MAX_IMAGE_PIXELS  # type: ignore[operator]


def test_header_dimension_limits() -> None:
    err = rejected(bomb_png(8000, 8000), "probe.too_many_pixels")  # 64 MP, under Pillow's guard
    assert err.details == {
        "pixels": 64_000_000,
        "max_pixels": 40_000_000,
        "width": 8000,
        "height": 8000,
    }
    assert "64.0 megapixels" in err.message and "40 megapixels" in err.message

    err = rejected(bomb_png(12_001, 100), "probe.side_too_large")
    assert (err.details["width"], err.details["max_side"]) == (12_001, 12_000)

    err = rejected(encode(Image.new("RGB", (31, 200)), "PNG"), "probe.too_small")
    assert (err.details["width"], err.details["min_side"]) == (31, 32)
    decode_probe(encode(Image.new("RGB", (31, 200)), "PNG"), IntakeLimits(min_side=16))


def test_too_many_bytes(tmp_path: Path) -> None:
    data = encode(Image.fromarray(quadrants()), "PNG")
    small = IntakeLimits(max_bytes=len(data) - 1)
    err = rejected(data, "probe.too_large_bytes", small)
    assert err.details == {"byte_size": len(data), "max_bytes": len(data) - 1}
    path = tmp_path / "big.png"
    path.write_bytes(data)
    rejected(path, "probe.too_large_bytes", small)
    assert decode_probe(path, IntakeLimits(max_bytes=len(data))).byte_size == len(data)

    err = rejected(b"\xff\xd8\xff" + bytes(21 * 1024 * 1024), "probe.too_large_bytes")
    assert "21.0 MB" in err.message and "20.0 MB" in err.message


@pytest.mark.parametrize(("fmt", "kw"), [("JPEG", {}), ("PNG", {}), ("WEBP", {})])
def test_truncated_files(fmt: str, kw: dict[str, Any]) -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noisy), fmt, **kw)
    err = rejected(data[: len(data) // 2], "probe.truncated")
    assert err.details["format"] == fmt
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_files() -> None:
    data = bytearray(encode(Image.fromarray(quadrants()), "PNG"))
    idat = data.index(b"IDAT") + 4
    data[idat + 2 : idat + 30] = b"\x5a" * 28  # scramble the compressed pixels
    rejected(bytes(data), "probe.corrupt")
    rejected(b"\xff\xd8\xff" + bytes(range(256)) * 4, "probe.corrupt")  # JPEG magic, then junk
    rejected(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "probe.corrupt")


def test_garbage_is_not_an_image() -> None:
    err = rejected(b"hello, this is a text file, not a photo\n" * 10, "probe.not_an_image")
    assert err.details["leading_bytes"].startswith("68656c6c6f")
    rejected(np.random.default_rng(2).bytes(4096), "probe.not_an_image")


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_formats_are_unsupported(tmp_path: Path, fmt: str, name: str) -> None:
    data = encode(Image.fromarray(quadrants()), fmt)
    err = rejected(data, "probe.unsupported_format")
    assert err.details["detected_format"] == name
    assert "JPEG" in err.message
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    rejected(path, "probe.unsupported_format")


def test_heic_is_named() -> None:
    err = rejected(b"\x00\x00\x00\x18ftypheic" + bytes(64), "probe.unsupported_format")
    assert err.details["detected_format"] == "HEIC"


def test_empty_missing_and_directory(tmp_path: Path) -> None:
    rejected(b"", "probe.empty")
    (tmp_path / "empty.jpg").write_bytes(b"")
    rejected(tmp_path / "empty.jpg", "probe.empty")
    err = rejected(tmp_path / "nope.jpg", "probe.not_found")
    assert err.details["path"] == str(tmp_path / "nope.jpg")
    rejected(str(tmp_path), "probe.not_a_file")
    rejected("", "probe.not_found")


def test_refuses_to_run_with_truncated_loading_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_probe(encode(Image.fromarray(quadrants()), "PNG"))


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        decode_probe(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IntakeLimits(max_bytes=0)
    with pytest.raises(ValueError):
        IntakeLimits(min_side=100, max_side=50)
