"""The catalogue of published face models: where each comes from, its licence, and its checksum.

Nothing is ever used unverified: a download (or a file the user fetched by hand, ``--from``) is
written to a temporary file beside its destination, its size and SHA-256 are checked against the
catalogue, and only then is it renamed into place. A mismatch deletes the temporary file.

Error codes (``CatalogueError``): ``catalogue.invalid``, ``catalogue.unknown_model``,
``catalogue.download_failed``, ``catalogue.checksum_mismatch``, ``catalogue.source_missing``,
``catalogue.write_failed``.

Environment: ``FIELDID_MODELS`` (model directory, default ``~/.local/share/fieldid/models``) and
``FIELDID_CATALOGUE`` (a catalogue JSON to use instead of the packaged one).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Literal

from fieldid.errors import CatalogueError

__all__ = [
    "Catalogue",
    "CatalogueEntry",
    "InputSpec",
    "Licence",
    "default_models_dir",
    "install_from_file",
    "install_model",
    "list_models",
    "load_catalogue",
    "model_status",
]

ModelKind = Literal["embedder", "detector"]
ModelStatus = Literal["installed", "missing", "corrupt"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1 << 16
_URL_SCHEMES = ("https", "http", "file")


@dataclass(frozen=True)
class Licence:
    spdx: str
    note: str

    def __str__(self) -> str:
        return f"{self.spdx}: {self.note}" if self.note else self.spdx


@dataclass(frozen=True)
class InputSpec:
    """How an embedder wants its aligned crop (the ``OnnxEmbedder`` keyword arguments)."""

    input_size: int
    channel_order: Literal["RGB", "BGR"]
    mean: float
    std: float
    layout: Literal["NCHW", "NHWC"] = "NCHW"


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    kind: ModelKind
    file: str
    url: str
    licence: Licence
    sha256: str
    size: int
    input: InputSpec | None
    note: str

    def path_in(self, models_dir: str | os.PathLike[str] | None = None) -> Path:
        return resolve_dir(models_dir) / self.file


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[CatalogueEntry, ...]
    source: str

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> CatalogueEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise CatalogueError(
            f"no model named {name!r} in the catalogue; known: {', '.join(self.names()) or 'none'}",
            code="catalogue.unknown_model",
            name=name,
        )


# --- loading ----------------------------------------------------------------------------------


def default_models_dir() -> Path:
    """``$FIELDID_MODELS``, or ``~/.local/share/fieldid/models``."""
    env = os.environ.get("FIELDID_MODELS")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "fieldid" / "models"


def resolve_dir(models_dir: str | os.PathLike[str] | None) -> Path:
    return Path(models_dir).expanduser() if models_dir is not None else default_models_dir()


def _invalid(source: str, what: str) -> CatalogueError:
    return CatalogueError(f"catalogue {source}: {what}", code="catalogue.invalid", source=source)


def _str(obj: dict[str, Any], key: str, source: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(source, f"{where}: '{key}' must be a non-empty string")
    return value


def _number(obj: dict[str, Any], key: str, source: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(source, f"{where}: '{key}' must be a number")
    return float(value)


def _parse_entry(raw: Any, source: str, index: int) -> CatalogueEntry:
    where = f"model #{index + 1}"
    if not isinstance(raw, dict):
        raise _invalid(source, f"{where} is not an object")
    name = _str(raw, "name", source, where)
    where = f"model {name!r}"
    kind = raw.get("kind")
    if kind not in ("embedder", "detector"):
        raise _invalid(source, f"{where}: 'kind' must be 'embedder' or 'detector'")
    file = _str(raw, "file", source, where)
    if Path(file).name != file or file in (".", "..") or "\\" in file:
        raise _invalid(source, f"{where}: 'file' must be a plain file name, got {file!r}")
    url = _str(raw, "url", source, where)
    if urllib.parse.urlsplit(url).scheme not in _URL_SCHEMES:
        raise _invalid(source, f"{where}: 'url' must be http(s) or file, got {url!r}")
    sha = _str(raw, "sha256", source, where).lower()
    if not _SHA256.match(sha):
        raise _invalid(source, f"{where}: 'sha256' must be 64 hex digits")
    size = raw.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise _invalid(source, f"{where}: 'size' must be a positive whole number of bytes")
    lic = raw.get("licence")
    if not isinstance(lic, dict):
        raise _invalid(source, f"{where}: 'licence' must be an object with 'spdx' and 'note'")
    licence = Licence(_str(lic, "spdx", source, where), str(lic.get("note") or ""))
    spec: InputSpec | None = None
    raw_input = raw.get("input")
    if kind == "embedder":
        if not isinstance(raw_input, dict):
            raise _invalid(source, f"{where}: an embedder needs an 'input' object")
        order = raw_input.get("channel_order", "RGB")
        layout = raw_input.get("layout", "NCHW")
        size_in = raw_input.get("input_size")
        if order not in ("RGB", "BGR") or layout not in ("NCHW", "NHWC"):
            raise _invalid(source, f"{where}: channel_order RGB|BGR and layout NCHW|NHWC")
        if isinstance(size_in, bool) or not isinstance(size_in, int) or size_in <= 0:
            raise _invalid(source, f"{where}: 'input.input_size' must be a positive integer")
        spec = InputSpec(
            input_size=size_in,
            channel_order=order,
            mean=_number(raw_input, "mean", source, where),
            std=_number(raw_input, "std", source, where),
            layout=layout,
        )
    return CatalogueEntry(
        name=name,
        kind=kind,
        file=file,
        url=url,
        licence=licence,
        sha256=sha,
        size=size,
        input=spec,
        note=str(raw.get("note") or ""),
    )


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """Read a catalogue: ``path``, else ``$FIELDID_CATALOGUE``, else the packaged one."""
    if path is None and os.environ.get("FIELDID_CATALOGUE"):
        path = os.environ["FIELDID_CATALOGUE"]
    try:
        if path is None:
            source = "packaged catalogue.json"
            text = resources.files("fieldid.template").joinpath("catalogue.json").read_text("utf-8")
        else:
            source = str(path)
            text = Path(path).expanduser().read_text("utf-8")
    except OSError as exc:
        raise CatalogueError(
            f"cannot read catalogue {path}: {exc.strerror or exc}", code="catalogue.invalid"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(source, f"not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise _invalid(source, "expected an object with a 'models' list")
    entries = tuple(_parse_entry(raw, source, i) for i, raw in enumerate(data["models"]))
    seen: set[str] = set()
    for e in entries:
        if e.name in seen:
            raise _invalid(source, f"model name {e.name!r} appears twice")
        seen.add(e.name)
    return Catalogue(entries, source)


def _as_catalogue(catalogue: Catalogue | str | os.PathLike[str] | None) -> Catalogue:
    return catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue)


def list_models(
    catalogue: Catalogue | str | os.PathLike[str] | None = None,
) -> list[CatalogueEntry]:
    """Every model in the catalogue, in catalogue order."""
    return list(_as_catalogue(catalogue).entries)


# --- verification -----------------------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(entry: CatalogueEntry, path: Path) -> bool:
    try:
        return path.stat().st_size == entry.size and _sha256_of(path) == entry.sha256
    except OSError:
        return False


def model_status(
    entry: CatalogueEntry, models_dir: str | os.PathLike[str] | None = None
) -> ModelStatus:
    """``installed`` (present, checksum right), ``corrupt`` (present, wrong) or ``missing``."""
    path = entry.path_in(models_dir)
    if not path.is_file():
        return "missing"
    return "installed" if _matches(entry, path) else "corrupt"


def _mismatch(entry: CatalogueEntry, origin: str, size: int, sha: str, head: bytes) -> None:
    if size == entry.size and sha == entry.sha256:
        return
    hint = ""
    if head.startswith(b"version https://git-lfs"):
        hint = " It is a Git LFS pointer, not the model: fetch the file's media URL."
    elif size > entry.size:
        hint = " It is larger than the catalogue's size, so reading stopped there."
    raise CatalogueError(
        f"{origin} does not match the catalogue's {entry.name}: expected {entry.size} bytes "
        f"with SHA-256 {entry.sha256}, got {size}{'+' if size > entry.size else ''} bytes with "
        f"SHA-256 {sha}. The file was not installed.{hint}",
        code="catalogue.checksum_mismatch",
        name=entry.name,
        expected_sha256=entry.sha256,
        actual_sha256=sha,
        expected_size=entry.size,
        actual_size=size,
    )


@contextlib.contextmanager
def _staged(entry: CatalogueEntry, dest_dir: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary file beside the destination, deleted unless renamed into place."""
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".part", dir=dest_dir)
    except OSError as exc:
        raise CatalogueError(
            f"cannot write to the model directory {dest_dir}: {exc.strerror or exc}",
            code="catalogue.write_failed",
        ) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy_verified(
    entry: CatalogueEntry,
    read: Callable[[int], bytes],
    out: BinaryIO,
    origin: str,
    on_read_error: Callable[[BaseException], CatalogueError],
) -> None:
    """Copy blocks from ``read(n)`` into ``out`` while hashing; stop past the catalogue size."""
    digest = hashlib.sha256()
    total = 0
    head = b""
    while True:
        try:
            block = read(_BLOCK)
        except (OSError, http.client.HTTPException) as exc:
            raise on_read_error(exc) from exc
        if not block:
            break
        if not head:
            head = block[:64]
        total += len(block)
        if total > entry.size:
            _mismatch(entry, origin, total, digest.hexdigest(), head)
        digest.update(block)
        try:
            out.write(block)
        except OSError as exc:
            raise CatalogueError(
                f"cannot write {entry.file}: {exc.strerror or exc}", code="catalogue.write_failed"
            ) from exc
    _mismatch(entry, origin, total, digest.hexdigest(), head)
    try:
        out.flush()
        os.fsync(out.fileno())
    except OSError as exc:
        raise CatalogueError(
            f"cannot write {entry.file}: {exc.strerror or exc}", code="catalogue.write_failed"
        ) from exc


def _place(tmp: Path, final: Path) -> Path:
    try:
        os.replace(tmp, final)
    except OSError as exc:
        raise CatalogueError(
            f"cannot move the verified file into {final}: {exc.strerror or exc}",
            code="catalogue.write_failed",
        ) from exc
    return final


# --- installing -------------------------------------------------------------------------------


def _manual_hint(entry: CatalogueEntry, url: str) -> str:
    return (
        f"This machine may have no internet access. On a machine that has, download {url} "
        f"(SHA-256 {entry.sha256}, {entry.size} bytes), copy it here, and run "
        f"`fieldid models install {entry.name} --from FILE` to verify and install it."
    )


def install_model(
    name: str,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    catalogue: Catalogue | str | os.PathLike[str] | None = None,
    url_override: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``name`` into ``dest_dir`` (default ``default_models_dir()``), verified.

    Returns the installed path. A file already there with the right checksum is kept and not
    downloaded again. ``url_override`` fetches from a mirror; the checksum still has to match.
    ``timeout`` bounds each network wait (connect, each read), in seconds.
    """
    entry = _as_catalogue(catalogue).get(name)
    directory = resolve_dir(dest_dir)
    final = directory / entry.file
    if final.is_file() and _matches(entry, final):
        return final
    url = url_override or entry.url
    if urllib.parse.urlsplit(url).scheme not in _URL_SCHEMES:
        raise CatalogueError(
            f"cannot download from {url!r}: only http, https and file URLs are allowed",
            code="catalogue.download_failed",
        )

    def failed(exc: BaseException) -> CatalogueError:
        if isinstance(exc, urllib.error.HTTPError):
            why = f"the server answered HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            why = str(exc.reason)
        else:
            why = str(exc) or type(exc).__name__
        return CatalogueError(
            f"could not download {entry.name} from {url}: {why}. {_manual_hint(entry, url)}",
            code="catalogue.download_failed",
            name=entry.name,
            url=url,
        )

    request = urllib.request.Request(url, headers={"User-Agent": "fieldid-models/1"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise failed(exc) from exc
    with response, _staged(entry, directory) as (out, tmp):
        _copy_verified(entry, response.read, out, f"the download from {url}", failed)
        return _place(tmp, final)


def install_from_file(
    name: str,
    source: str | os.PathLike[str],
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    catalogue: Catalogue | str | os.PathLike[str] | None = None,
) -> Path:
    """Verify a file the user fetched themselves against the catalogue and copy it into place."""
    entry = _as_catalogue(catalogue).get(name)
    src = Path(source).expanduser()
    if not src.is_file():
        raise CatalogueError(
            f"{src} does not exist or is not a file", code="catalogue.source_missing", path=str(src)
        )
    final = resolve_dir(dest_dir) / entry.file
    if final.is_file() and _matches(entry, final):
        return final

    def unreadable(exc: BaseException) -> CatalogueError:
        return CatalogueError(
            f"cannot read {src}: {exc}", code="catalogue.source_missing", path=str(src)
        )

    try:
        fh = src.open("rb")
    except OSError as exc:
        raise unreadable(exc) from exc
    with fh, _staged(entry, final.parent) as (out, tmp):
        _copy_verified(entry, fh.read, out, str(src), unreadable)
        return _place(tmp, final)
