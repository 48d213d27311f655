"""OCR of MRZ lines: a small port and its adapters.

:class:`LineReader` reads a batch of single-line grayscale images and returns, for each, the text
and one confidence per character. The reader is constrained to the MRZ alphabet (``A``–``Z``,
``0``–``9``, ``<``): a model's other characters are never produced, so a chevron read as ``«`` comes
out as the most likely MRZ character with the low confidence it deserves.

Adapters:

- :class:`PaddleLineReader` (the default): PP-OCRv6 small text recognition, the ONNX model shipped
  inside the PyPI wheel ``rapidocr`` (Apache-2.0), run with onnxruntime; CTC decoding restricted to
  the MRZ alphabet. Loads lazily, once, under a lock. One inference thread by default: on a
  machine shared with other work (and a server reading several documents at once) a second
  thread per read was slower, not faster (docs/benchmarks.md).
- :class:`TesseractLineReader`: Debian's ``tesseract`` command (``--psm 7``, MRZ whitelist, the
  ``eng`` LSTM model); kept for comparison (``benchmarks/bench_documents.py --engine tesseract``).
  Tesseract gives no per-character confidence through its command line here: each character gets
  the line's mean word confidence.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

from fieldid.documents.mrz import MRZ_ALPHABET
from fieldid.errors import ModelError

Gray = NDArray[np.uint8]


#: A character another reading gave at least this probability is a plausible alternative.
ALTERNATIVE_MIN_PROB = 0.02


@dataclass(frozen=True)
class LineText:
    text: str
    confidences: tuple[float, ...]
    #: Per character, other MRZ characters the model found plausible, with their probability
    #: (empty when the engine does not say).
    alternatives: tuple[dict[str, float], ...] = ()
    #: Per character, where the engine saw it: the x of its centre in the line image's pixels
    #: (empty when the engine does not say).
    positions: tuple[float, ...] = ()
    #: The line image the engine read (``positions`` are in its pixels); ``None`` when not kept.
    image: Gray | None = field(default=None, repr=False, compare=False)

    @property
    def mean_confidence(self) -> float:
        return float(np.mean(self.confidences)) if self.confidences else 0.0


class LineReader(Protocol):
    """Reads single text lines (grayscale, dark text on light) in the MRZ alphabet."""

    name: str

    def read_lines(self, images: list[Gray], *, x_scale: float | None = None) -> list[LineText]:
        """Read each image as one line. ``x_scale`` stretches (above 1) or narrows (below 1)
        the lines horizontally before reading, where the engine scales its input; ``None``
        keeps the engine's own choice."""
        ...


def _rapidocr_model(filename: str) -> Path:
    try:
        ref = resources.files("rapidocr").joinpath("models", filename)
    except ModuleNotFoundError as e:
        raise ModelError(
            "the OCR model ships with the PyPI package rapidocr, which is not installed "
            "(./dev setup installs it)",
            code="document.ocr_missing",
        ) from e
    path = Path(str(ref))
    if not path.is_file():
        raise ModelError(
            f"OCR model {filename} not found in the rapidocr package", code="document.ocr_missing"
        )
    return path


class PaddleLineReader:
    """PP-OCR text recognition (ONNX) with CTC decoding restricted to the MRZ alphabet."""

    name = "ppocrv6-rec-small"
    #: Input height the model was trained on.
    height = 48

    def __init__(
        self, model_path: Path | None = None, *, threads: int = 1, x_scale: float = 1.0
    ) -> None:
        self._path = model_path
        self.x_scale = x_scale
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._cols: NDArray[np.int64] | None = None

    def _load(self) -> Any:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                path = self._path or _rapidocr_model("PP-OCRv6_rec_small.onnx")
                opts = ort.SessionOptions()
                if self._threads:
                    opts.intra_op_num_threads = self._threads
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                chars = sess.get_modelmeta().custom_metadata_map.get("character", "")
                vocab = chars.split("\n")
                index = {c: i + 1 for i, c in enumerate(vocab)}  # 0 is the CTC blank
                missing = [c for c in MRZ_ALPHABET if c not in index]
                if missing:
                    raise ModelError(
                        f"OCR model at {path} cannot read {''.join(missing)}",
                        code="document.ocr_model",
                    )
                self._cols = np.array([0] + [index[c] for c in MRZ_ALPHABET], dtype=np.int64)
                self._session = sess
        return self._session

    def _prep(self, img: Gray, width: int, x_scale: float) -> NDArray[np.float32]:
        h, w = img.shape[:2]
        nw = max(1, min(width, round(w * self.height / h * x_scale)))
        x = cv2.resize(img, (nw, self.height), interpolation=cv2.INTER_AREA)
        x = x.astype(np.float32) / 255.0
        out = np.ones((self.height, width), np.float32)
        out[:, :nw] = x
        out = (out - 0.5) / 0.5
        return np.repeat(out[None, :, :], 3, axis=0)

    def read_lines(self, images: list[Gray], *, x_scale: float | None = None) -> list[LineText]:
        """All lines in one onnxruntime call (padded to the widest)."""
        if not images:
            return []
        sess = self._load()
        assert self._cols is not None
        xs = self.x_scale if x_scale is None else x_scale
        width = max(round(i.shape[1] * self.height / i.shape[0] * xs) for i in images)
        width = int(np.ceil(width / 32) * 32)
        batch = np.stack([self._prep(i, width, xs) for i in images])
        probs = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
        sub = probs[:, :, self._cols]  # (N, T, 1 + 37)
        # one output step per this many input pixels
        step = width / max(1, sub.shape[1])
        out: list[LineText] = []
        for img, p in zip(images, sub, strict=True):
            h, w = img.shape[:2]
            # input pixels per line-image pixel
            sx = max(1, min(width, round(w * self.height / h * xs))) / w
            best = p.argmax(axis=1)
            text: list[str] = []
            conf: list[float] = []
            alts: list[dict[str, float]] = []
            where: list[float] = []
            prev = 0
            for t, k in enumerate(best):
                if k != 0:
                    others = {
                        MRZ_ALPHABET[j - 1]: float(p[t, j])
                        for j in np.nonzero(p[t, 1:] >= ALTERNATIVE_MIN_PROB)[0] + 1
                        if j != k
                    }
                    x = (t + 0.5) * step / sx
                    if k != prev:
                        text.append(MRZ_ALPHABET[k - 1])
                        conf.append(float(p[t, k]))
                        alts.append(others)
                        where.append(x)
                    else:
                        if float(p[t, k]) > conf[-1]:
                            where[-1] = x
                        conf[-1] = max(conf[-1], float(p[t, k]))
                        for c, v in others.items():
                            alts[-1][c] = max(v, alts[-1].get(c, 0.0))
                prev = int(k)
            out.append(LineText("".join(text), tuple(conf), tuple(alts), tuple(where), img))
        return out


class TesseractLineReader:
    """Debian's tesseract command line, one call per line (for comparison)."""

    name = "tesseract-eng-lstm"

    def __init__(self, command: str = "tesseract") -> None:
        found = shutil.which(command)
        if found is None:
            raise ModelError(
                "tesseract is not installed (Debian package tesseract-ocr)",
                code="document.ocr_missing",
            )
        self._cmd = found

    def read_lines(self, images: list[Gray], *, x_scale: float | None = None) -> list[LineText]:
        del x_scale  # tesseract scales its input itself
        out = []
        for img in images:
            h = img.shape[0]
            x = cv2.resize(img, None, fx=40 / h, fy=40 / h, interpolation=cv2.INTER_CUBIC)
            x = cv2.copyMakeBorder(x, 10, 10, 10, 10, cv2.BORDER_REPLICATE)
            _ok, png = cv2.imencode(".png", x)
            proc = subprocess.run(
                [
                    self._cmd,
                    "stdin",
                    "stdout",
                    "--psm",
                    "7",
                    "-l",
                    "eng",
                    "-c",
                    f"tessedit_char_whitelist={MRZ_ALPHABET}",
                    "tsv",
                ],
                input=png.tobytes(),
                capture_output=True,
                check=False,
                timeout=30,
            )
            words, confs = [], []
            for row in proc.stdout.decode("utf-8", "replace").splitlines()[1:]:
                cols = row.split("\t")
                if len(cols) == 12 and cols[11].strip():
                    words.append(cols[11].strip())
                    confs.append(max(0.0, float(cols[10])) / 100)
            text = "".join(words)
            c = float(np.mean(confs)) if confs else 0.0
            out.append(LineText(text, tuple([c] * len(text))))
        return out
