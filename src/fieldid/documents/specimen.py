"""Synthetic SPECIMEN documents: data pages rendered with OCR-B, then "photographed" in software.

For tests, benchmarks and docs only. Every page carries "SPECIMEN" in its header and across its
face; names and numbers are invented, and the issuing state is ``UTO`` (ICAO's own specimen
state, "Utopia").

- :func:`random_identity` draws invented holder data for a format.
- :func:`render_page` draws the data page (guilloche background, printed fields, a portrait area,
  the MRZ in OCR-B at 10 characters per inch) and returns it with where the portrait is.
- :func:`photograph` places the page in a scene and degrades it as a phone camera would:
  rotation (any angle up to 180° either way), perspective, blur, noise, glare, low light and JPEG
  compression, each drawn from :class:`Degradation`'s ranges.
- :func:`numbered_photo`: photo ``i`` of a seeded series, as ``benchmarks/bench_documents.py``
  draws them (tests take the benchmark's photos from it).

The OCR-B font comes from Debian's ``fonts-ocr-b`` (``scripts/apt-packages.txt``).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from fieldid.documents.mrz import FORMATS, MrzData, compose_mrz
from fieldid.errors import FieldidError

OCRB_PATHS = (
    Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf"),
    Path("/usr/share/fonts/truetype/ocr-b/OCRB.ttf"),
)
SANS_PATHS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
)

#: Page size (width, height) in millimetres, per format (ICAO 9303 parts 4 to 7).
PAGE_MM = {
    "TD1": (85.6, 54.0),
    "TD2": (105.0, 74.0),
    "TD3": (125.0, 88.0),
    "MRV-A": (120.0, 80.0),
    "MRV-B": (108.0, 80.0),
}
DOC_CODES = {
    "TD1": ("ID", "I<", "AC"),
    "TD2": ("ID", "I<", "AC"),
    "TD3": ("P<", "PD"),
    "MRV-A": ("V<", "VA"),
    "MRV-B": ("V<", "VB"),
}
TITLES = {
    "TD1": "IDENTITY CARD",
    "TD2": "IDENTITY CARD",
    "TD3": "PASSPORT",
    "MRV-A": "VISA",
    "MRV-B": "VISA",
}
#: Invented syllables for names (no real person is meant).
_SYL = (
    "KA",
    "LO",
    "MIR",
    "TEN",
    "VAS",
    "RU",
    "DEL",
    "NOR",
    "BE",
    "SAN",
    "TI",
    "OR",
    "VEL",
    "QU",
    "ZA",
    "HAN",
    "PER",
    "ESS",
    "GRO",
    "WIN",
    "JAX",
    "YU",
    "FEN",
    "CO",
    "DRA",
    "LIS",
)
#: Nationalities of invented holders (the issuing state is always UTO, the page says UTOPIA):
#: ICAO's specimen state, its codes for the stateless (XXA) and refugees (XXB), and a few
#: real codes so that parsing sees codes with filler (D<<) and of every shape.
_NATIONALITIES = ("UTO", "UTO", "UTO", "XXA", "XXB", "D<<", "FRA", "NLD", "KEN", "BRA", "IND")
_PX_PER_MM = 12.0


class SpecimenError(FieldidError):
    code = "document.specimen"


def font_path() -> Path:
    """The OCR-B font file (Debian ``fonts-ocr-b``)."""
    for p in OCRB_PATHS:
        if p.is_file():
            return p
    raise SpecimenError(
        "the OCR-B font is missing: install the Debian package fonts-ocr-b (./dev setup does)",
        code="document.no_ocrb_font",
    )


def _sans(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for p in SANS_PATHS:
        if p.is_file():
            return ImageFont.truetype(str(p), size)
    return ImageFont.load_default()


def _name(rng: random.Random, parts: int) -> str:
    return " ".join(
        "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 3))) for _ in range(parts)
    )


def _yymmdd(rng: random.Random, y0: int, y1: int) -> str:
    y = rng.randint(y0, y1)
    return f"{y % 100:02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _docnum(rng: random.Random) -> str:
    alnum = "ABCDEFGHJKLMNPRTUVWXY0123456789"
    n = rng.choice((8, 9, 9, 9))
    return "".join(rng.choice(alnum) for _ in range(n))


def random_identity(fmt: str, rng: random.Random) -> MrzData:
    """Invented holder data for a document of ``fmt``; expiry between 2026 and 2035."""
    if fmt not in FORMATS:
        raise SpecimenError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    state = "UTO"
    opt = "".join(rng.choice("0123456789") for _ in range(rng.choice((0, 6, 9))))
    cap = {"TD1": 15, "TD2": 7, "TD3": 14, "MRV-A": 16, "MRV-B": 8}[fmt]
    return MrzData(
        format=fmt,
        document_code=rng.choice(DOC_CODES[fmt]),
        issuing_country=state,
        document_number=_docnum(rng),
        surname=_name(rng, rng.choice((1, 1, 2))),
        given_names=_name(rng, rng.choice((1, 2, 2, 3))),
        nationality=rng.choice((state, rng.choice(_NATIONALITIES))),
        date_of_birth=_yymmdd(rng, 1940, 2008),
        sex=rng.choice("MFMF<X"),
        expiry_date=_yymmdd(rng, 2026, 2035),
        optional_data=opt[:cap],
        optional_data_2="" if fmt != "TD1" else opt[: rng.choice((0, 5))],
    )


@dataclass(frozen=True)
class Page:
    """A rendered data page (RGB), its MRZ lines, and the portrait box (x0, y0, x1, y1) in px."""

    rgb: NDArray[np.uint8]
    mrz_lines: list[str]
    portrait_box: tuple[int, int, int, int]
    data: MrzData


def _drawn_face(w: int, h: int, rng: random.Random) -> Image.Image:
    """A drawn (not photographed) face for pages shown to people: no one's likeness."""
    img = Image.new("RGB", (w, h), (214, 222, 230))
    d = ImageDraw.Draw(img)
    skin = rng.choice(((233, 200, 170), (200, 150, 110), (150, 100, 70), (110, 75, 50)))
    d.ellipse((w * 0.15, h * 0.68, w * 0.85, h * 1.25), fill=(70, 80, 100))
    d.ellipse((w * 0.25, h * 0.15, w * 0.75, h * 0.72), fill=skin)
    for ex in (0.39, 0.61):
        d.ellipse((w * (ex - 0.04), h * 0.38, w * (ex + 0.04), h * 0.43), fill=(40, 40, 40))
    d.arc((w * 0.4, h * 0.5, w * 0.6, h * 0.62), 20, 160, fill=(120, 50, 50), width=2)
    return img


def _guilloche(w: int, h: int, rng: random.Random) -> Image.Image:
    base = np.array([rng.randint(225, 245), rng.randint(225, 245), rng.randint(215, 240)])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    f1, f2 = rng.uniform(0.02, 0.05), rng.uniform(0.01, 0.03)
    wave = np.sin(xx * f1 + 6 * np.sin(yy * f2)) * np.cos(yy * f1 * 0.7 + 3 * np.sin(xx * f2))
    tint = np.array([rng.uniform(-14, 4), rng.uniform(-10, 6), rng.uniform(-4, 12)])
    img = base[None, None, :] + wave[..., None] * tint[None, None, :]
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def render_page(
    data: MrzData,
    *,
    portrait: NDArray[np.uint8] | None = None,
    mrz_lines: list[str] | None = None,
    seed: int = 0,
) -> Page:
    """Draw the data page of ``data``. ``mrz_lines`` overrides the MRZ printed (for specimens with
    deliberately wrong check digits); ``portrait`` (RGB) fills the portrait area, else a drawn
    face."""
    rng = random.Random(seed)
    fmt = data.format
    wmm, hmm = PAGE_MM[fmt]
    px = _PX_PER_MM
    w, h = round(wmm * px), round(hmm * px)
    img = _guilloche(w, h, rng)
    d = ImageDraw.Draw(img)
    lines = mrz_lines if mrz_lines is not None else compose_mrz(data)
    n = len(lines)
    pitch_mm, lead_mm = 2.54, 4.23
    mrz_h = (n - 1) * lead_mm + 2 * 3.0 + 2.0
    mrz_top = hmm - mrz_h
    # header
    d.text(
        (4 * px, 2.5 * px),
        f"UTOPIA  {TITLES[fmt]}  SPECIMEN",
        fill=(40, 40, 90),
        font=_sans(round(3.2 * px)),
    )
    # portrait
    pw = (0.30 if fmt != "TD1" else 0.28) * wmm
    ph = min(pw * 1.28, mrz_top - 11.0)
    pw = ph / 1.28
    x0, y0 = round(4 * px), round(8.5 * px)
    x1, y1 = x0 + round(pw * px), y0 + round(ph * px)
    if portrait is not None:
        face = Image.fromarray(portrait).convert("RGB")
    else:
        face = _drawn_face(x1 - x0, y1 - y0, rng)
    fw, fh = face.size
    # centre-crop to the box's aspect, then fit
    want = (x1 - x0) / (y1 - y0)
    if fw / fh > want:
        cw = round(fh * want)
        face = face.crop(((fw - cw) // 2, 0, (fw - cw) // 2 + cw, fh))
    else:
        ch = round(fw / want)
        face = face.crop((0, (fh - ch) // 2, fw, (fh - ch) // 2 + ch))
    img.paste(face.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), (x0, y0))
    # printed fields
    lab, val = _sans(round(1.6 * px)), _sans(round(2.4 * px))
    tx = x1 + round(4 * px)
    rows = [
        ("Surname", data.surname),
        ("Given names", data.given_names),
        ("Nationality", data.nationality.replace("<", "")),
        ("Date of birth", f"{data.date_of_birth[4:]}.{data.date_of_birth[2:4]}.19xx"),
        ("Sex", data.sex.replace("<", "-")),
        (
            "Date of expiry",
            f"{data.expiry_date[4:]}.{data.expiry_date[2:4]}.20{data.expiry_date[:2]}",
        ),
        ("Document no.", data.document_number),
    ]
    step = (mrz_top - 10.0) / len(rows)
    for i, (k, v) in enumerate(rows):
        y = 8.5 * px + i * step * px
        if y + 4.5 * px > mrz_top * px:
            break
        d.text((tx, y), k, fill=(90, 90, 110), font=lab)
        d.text((tx, y + 1.8 * px), v, fill=(20, 20, 30), font=val)
    # SPECIMEN across the face (light, as on real specimens)
    stamp = Image.new("L", (w, h), 0)
    ImageDraw.Draw(stamp).text((w * 0.28, h * 0.28), "SPECIMEN", fill=70, font=_sans(round(8 * px)))
    stamp = stamp.rotate(18, center=(w / 2, h / 2))
    arr = np.array(img).astype(np.int16)
    s = np.array(stamp)[..., None].astype(np.int16)
    arr = arr - (s * np.array([0, 1, 1])[None, None, :]).astype(np.int16)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    # MRZ: clear band, OCR-B at 10 cpi, 6 lpi
    d = ImageDraw.Draw(img)
    d.rectangle((0, round(mrz_top * px), w, h), fill=img.getpixel((2, 2)))  # type: ignore[arg-type]
    font = ImageFont.truetype(str(font_path()), round(3.6 * px))
    left = (wmm - pitch_mm * len(lines[0])) / 2
    for li, line in enumerate(lines):
        base_y = (mrz_top + 2.0 + 2.6 + li * lead_mm) * px
        for ci, c in enumerate(line):
            cx = (left + (ci + 0.5) * pitch_mm) * px
            d.text((cx, base_y), c, fill=(15, 15, 20), font=font, anchor="ms")
    return Page(np.array(img), list(lines), (x0, y0, x1, y1), data)


@dataclass(frozen=True)
class Degradation:
    """Ranges the photographer draws from (each image gets one draw)."""

    max_rotation_deg: float = 180.0
    #: Corner jitter as a share of the page's size (perspective).
    perspective: float = 0.06
    #: Page width as a share of the frame's width.
    #: Page size as a share of the largest that fits the frame at that angle.
    scale: tuple[float, float] = (0.6, 1.0)
    blur_sigma: tuple[float, float] = (0.0, 1.4)
    noise_sigma: tuple[float, float] = (1.0, 7.0)
    glare_probability: float = 0.5
    #: Grey levels added at the glare's centre: up to 110 the print stays legible under it
    #: (the benchmark's range); stronger glare erases it (``--glare-max`` to test refusals).
    glare_strength: tuple[float, float] = (40.0, 110.0)
    low_light_probability: float = 0.3
    low_light_gain: tuple[float, float] = (0.35, 0.7)
    jpeg_quality: tuple[int, int] = (45, 92)
    frame: tuple[int, int] = (1600, 1200)

    def clean(self) -> Degradation:
        """Upright, sharp, well lit: for tests of everything but the photography."""
        return replace(
            self,
            max_rotation_deg=0.0,
            perspective=0.0,
            blur_sigma=(0.0, 0.0),
            noise_sigma=(0.0, 0.0),
            glare_probability=0.0,
            low_light_probability=0.0,
            jpeg_quality=(95, 95),
        )


@dataclass(frozen=True)
class Photo:
    jpeg: bytes
    #: What was done, for reports: angle, blur, noise, glare, gain, jpeg quality.
    conditions: dict[str, float]
    #: Portrait box corners (4 x 2 float) in the photo.
    portrait_quad: NDArray[np.float64]


def photograph(
    page: Page,
    rng: random.Random,
    deg: Degradation | None = None,
    *,
    angle: float | None = None,
) -> Photo:
    """The page in a scene, degraded as a phone camera would (see :class:`Degradation`)."""
    deg = deg or Degradation()
    fw, fh = deg.frame
    if rng.random() < 0.35:
        fw, fh = fh, fw
    nrng = np.random.default_rng(rng.randrange(2**32))
    # scene: a textured surface
    base = np.array([rng.randint(30, 200) for _ in range(3)], dtype=np.float32)
    scene = base[None, None, :] + nrng.normal(0, 12, (fh // 8, fw // 8, 1)).astype(np.float32)
    scene = np.asarray(cv2.resize(scene, (fw, fh), interpolation=cv2.INTER_CUBIC), np.float32)
    if scene.ndim == 2:
        scene = scene[..., None]
    scene = np.broadcast_to(scene, (fh, fw, 3)).copy()
    ph, pw = page.rgb.shape[:2]
    ang = rng.uniform(-deg.max_rotation_deg, deg.max_rotation_deg) if angle is None else angle
    # fit the rotated page's bounding box inside the frame
    rad = math.radians(ang)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    s_fit = min(fw / (pw * c + ph * s), fh / (pw * s + ph * c)) / (1 + 2 * deg.perspective)
    scale = s_fit * rng.uniform(*deg.scale)
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], dtype=np.float32)
    jit = deg.perspective
    dst = src.copy()
    dst += np.array(
        [[rng.uniform(-jit, jit) * pw, rng.uniform(-jit, jit) * ph] for _ in range(4)],
        dtype=np.float32,
    )
    dst -= np.array([pw / 2, ph / 2], dtype=np.float32)
    rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]])
    dst = (dst @ rot.T * scale).astype(np.float32)
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    room = np.array([fw, fh]) - (hi - lo)
    off = -lo + np.array([rng.uniform(0, max(0.0, room[0])), rng.uniform(0, max(0.0, room[1]))])
    dst = (dst + off).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(page.rgb, H, (fw, fh), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), H, (fw, fh)) > 127
    img = np.where(mask[..., None], warped.astype(np.float32), scene)
    # lighting: a gentle gradient, then low light
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
    gx, gy = rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15)
    img *= (1 + gx * (xx / fw - 0.5) + gy * (yy / fh - 0.5))[..., None]
    gain = 1.0
    if rng.random() < deg.low_light_probability:
        gain = rng.uniform(*deg.low_light_gain)
        img *= gain
    glare = 0.0
    if rng.random() < deg.glare_probability:
        glare = rng.uniform(*deg.glare_strength)
        cx, cy = (
            dst[:, 0].mean() + rng.uniform(-0.3, 0.3) * pw * scale,
            dst[:, 1].mean() + (rng.uniform(-0.3, 0.3) * ph * scale),
        )
        r = rng.uniform(0.08, 0.22) * pw * scale
        img += (glare * np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))))[..., None]
    sigma = rng.uniform(*deg.blur_sigma)
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(*deg.noise_sigma) / max(gain, 0.5)
    if noise > 0:
        img += nrng.normal(0, noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    q = rng.randint(*deg.jpeg_quality)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=q)
    x0, y0, x1, y1 = page.portrait_box
    quad = cv2.perspectiveTransform(
        np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=np.float32), H
    )[0].astype(np.float64)
    cond = {
        "angle": round(ang, 1),
        "blur": round(sigma, 2),
        "noise": round(noise, 1),
        "glare": round(glare, 1),
        "gain": round(gain, 2),
        "jpeg_quality": q,
        "page_px_per_mm": round(_PX_PER_MM * scale, 2),
    }
    return Photo(buf.getvalue(), cond, quad)


def with_wrong_check_digit(lines: list[str], rng: random.Random) -> tuple[list[str], str]:
    """The MRZ with one check digit changed (which one is returned)."""
    from fieldid.documents.mrz import LAYOUTS, detect_format

    lay = LAYOUTS[detect_format(lines)]
    ch = rng.choice(lay.checks)
    rows = [list(x) for x in lines]
    cur = rows[ch.digit.line][ch.digit.start]
    # an empty optional field's check digit may be < or 0: both are right, so pick neither
    rows[ch.digit.line][ch.digit.start] = rng.choice([d for d in "123456789" if d != cur])
    return ["".join(r) for r in rows], ch.name


@dataclass(frozen=True)
class NumberedPhoto:
    """Photo ``i`` of a seeded series (:func:`numbered_photo`)."""

    format: str
    #: The MRZ as printed on the page.
    lines: list[str]
    #: The check digit printed wrong (its name), or None.
    broken: str | None
    photo: Photo


def numbered_photo(seed: int, i: int, right: int, deg: Degradation | None = None) -> NumberedPhoto:
    """Photo ``i`` of the series ``seed``, the formats in turn: photos ``0`` to ``right - 1``
    have every check digit right, photos from ``right`` on one wrong
    (:func:`with_wrong_check_digit`). The same ``seed`` and ``i`` always give the same photo
    (``benchmarks/bench_documents.py --seed seed --documents right`` reads these)."""
    fmt = FORMATS[i % len(FORMATS)]
    rng = random.Random(seed * 100_003 + i)
    data = random_identity(fmt, rng)
    page = render_page(data, seed=seed * 100_003 + i)
    printed = page.mrz_lines
    broken = None
    if i >= right:
        printed, broken = with_wrong_check_digit(page.mrz_lines, rng)
        page = render_page(data, mrz_lines=printed, seed=seed * 100_003 + i)
    return NumberedPhoto(fmt, printed, broken, photograph(page, rng, deg or Degradation()))
