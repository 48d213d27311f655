"""The model catalogue: verified downloads from a local HTTP server, --from, and the CLI."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fieldid.cli.app import app
from fieldid.errors import CatalogueError
from fieldid.template.catalogue import (
    default_models_dir,
    install_from_file,
    install_model,
    list_models,
    load_catalogue,
    model_status,
)

PAYLOAD = b"\x08\x07fake-onnx-bytes" + bytes(range(256)) * 40
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture()
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/model.onnx":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            elif self.path == "/lfs-pointer.onnx":
                body = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 9\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def entry(
    name: str, url: str, sha: str = PAYLOAD_SHA, size: int = len(PAYLOAD)
) -> dict[str, object]:
    return {
        "name": name,
        "kind": "embedder",
        "file": f"{name}.onnx",
        "url": url,
        "licence": {"spdx": "MIT", "note": "test licence note"},
        "sha256": sha,
        "size": size,
        "input": {"input_size": 112, "channel_order": "RGB", "mean": 0, "std": 1},
        "note": "a test model",
    }


def write_catalogue(path: Path, *entries: dict[str, object]) -> Path:
    path.write_text(json.dumps({"format": 1, "models": list(entries)}))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def catalogue(tmp_path: Path, server: Server) -> Path:
    return write_catalogue(
        tmp_path / "catalogue.json",
        entry("good", f"{server.url}/model.onnx"),
        entry("tampered", f"{server.url}/model.onnx", sha="0" * 64),
        entry("pointer", f"{server.url}/lfs-pointer.onnx"),
        entry("gone", f"{server.url}/missing.onnx"),
        entry("offline", f"http://127.0.0.1:{free_port()}/model.onnx"),
    )


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --- the packaged catalogue -------------------------------------------------------------------


def test_packaged_catalogue_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIELDID_CATALOGUE", raising=False)
    models = {m.name: m for m in list_models()}
    assert {"sface-2021dec", "yunet-2023mar"} <= set(models)
    sface, yunet = models["sface-2021dec"], models["yunet-2023mar"]
    assert sface.kind == "embedder" and sface.licence.spdx == "Apache-2.0"
    assert sface.input is not None and sface.input.input_size == 112
    assert yunet.kind == "detector" and yunet.licence.spdx == "MIT" and yunet.input is None
    for m in models.values():
        assert len(m.sha256) == 64 and m.size > 0 and m.url.startswith("https://")


def test_default_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FIELDID_MODELS", str(tmp_path / "m"))
    assert default_models_dir() == tmp_path / "m"
    monkeypatch.delenv("FIELDID_MODELS")
    assert default_models_dir().parts[-3:] == ("share", "fieldid", "models")


@pytest.mark.parametrize(
    "bad",
    [
        {"file": "../escape.onnx"},
        {"sha256": "1234"},
        {"size": -1},
        {"kind": "classifier"},
        {"url": "ftp://example.org/x.onnx"},
        {"input": None},
    ],
)
def test_malformed_entries_are_refused(tmp_path: Path, bad: dict[str, object]) -> None:
    path = write_catalogue(tmp_path / "c.json", {**entry("m", "http://x/m.onnx"), **bad})
    with pytest.raises(CatalogueError) as err:
        load_catalogue(path)
    assert err.value.code == "catalogue.invalid"


# --- installing -------------------------------------------------------------------------------


def test_install_verifies_and_does_not_download_twice(
    tmp_path: Path, server: Server, catalogue: Path
) -> None:
    dest = tmp_path / "models"
    path = install_model("good", dest, catalogue=catalogue, timeout=5)
    assert path == dest / "good.onnx" and path.read_bytes() == PAYLOAD
    assert leftovers(dest) == ["good.onnx"]
    assert model_status(load_catalogue(catalogue).get("good"), dest) == "installed"
    assert install_model("good", dest, catalogue=catalogue, timeout=5) == path
    assert server.requests == ["/model.onnx"]


def test_a_corrupt_installed_file_is_replaced(
    tmp_path: Path, server: Server, catalogue: Path
) -> None:
    dest = tmp_path / "models"
    dest.mkdir()
    (dest / "good.onnx").write_bytes(b"truncated")
    assert model_status(load_catalogue(catalogue).get("good"), dest) == "corrupt"
    install_model("good", dest, catalogue=catalogue, timeout=5)
    assert (dest / "good.onnx").read_bytes() == PAYLOAD


def test_checksum_mismatch_is_refused_and_leaves_nothing(
    tmp_path: Path, server: Server, catalogue: Path
) -> None:
    dest = tmp_path / "models"
    with pytest.raises(CatalogueError) as err:
        install_model("tampered", dest, catalogue=catalogue, timeout=5)
    assert err.value.code == "catalogue.checksum_mismatch"
    assert err.value.details["actual_sha256"] == PAYLOAD_SHA
    assert leftovers(dest) == []


def test_an_lfs_pointer_is_refused_with_a_hint(
    tmp_path: Path, server: Server, catalogue: Path
) -> None:
    with pytest.raises(CatalogueError) as err:
        install_model("pointer", tmp_path / "m", catalogue=catalogue, timeout=5)
    assert err.value.code == "catalogue.checksum_mismatch"
    assert "Git LFS pointer" in err.value.message
    assert leftovers(tmp_path / "m") == []


def test_a_larger_download_stops_at_the_catalogue_size(tmp_path: Path, server: Server) -> None:
    cat = write_catalogue(tmp_path / "c.json", entry("small", f"{server.url}/model.onnx", size=100))
    with pytest.raises(CatalogueError) as err:
        install_model("small", tmp_path / "m", catalogue=cat, timeout=5)
    assert err.value.code == "catalogue.checksum_mismatch"
    assert leftovers(tmp_path / "m") == []


@pytest.mark.parametrize("name", ["offline", "gone"])
def test_network_failures_explain_the_manual_route(
    tmp_path: Path, server: Server, catalogue: Path, name: str
) -> None:
    with pytest.raises(CatalogueError) as err:
        install_model(name, tmp_path / "m", catalogue=catalogue, timeout=5)
    assert err.value.code == "catalogue.download_failed"
    assert "no internet" in err.value.message
    assert f"fieldid models install {name} --from FILE" in err.value.message
    assert leftovers(tmp_path / "m") == []


def test_url_override_uses_a_mirror(tmp_path: Path, server: Server, catalogue: Path) -> None:
    path = install_model(
        "offline", tmp_path / "m", catalogue=catalogue, url_override=f"{server.url}/model.onnx"
    )
    assert path.read_bytes() == PAYLOAD


def test_install_from_a_local_file(tmp_path: Path, catalogue: Path) -> None:
    fetched = tmp_path / "Downloads" / "whatever.onnx"
    fetched.parent.mkdir()
    fetched.write_bytes(PAYLOAD)
    path = install_from_file("offline", fetched, tmp_path / "m", catalogue=catalogue)
    assert path == tmp_path / "m" / "offline.onnx" and path.read_bytes() == PAYLOAD
    assert fetched.exists()

    wrong = tmp_path / "wrong.onnx"
    wrong.write_bytes(PAYLOAD[:-1] + b"!")
    with pytest.raises(CatalogueError) as err:
        install_from_file("good", wrong, tmp_path / "m", catalogue=catalogue)
    assert err.value.code == "catalogue.checksum_mismatch"
    assert leftovers(tmp_path / "m") == ["offline.onnx"]

    with pytest.raises(CatalogueError) as err:
        install_from_file("good", tmp_path / "nope.onnx", tmp_path / "m", catalogue=catalogue)
    assert err.value.code == "catalogue.source_missing"


def test_unknown_model(tmp_path: Path, catalogue: Path) -> None:
    with pytest.raises(CatalogueError) as err:
        install_model("nonesuch", tmp_path, catalogue=catalogue)
    assert err.value.code == "catalogue.unknown_model"


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture()
def cli_env(tmp_path: Path, catalogue: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "cli-models"
    monkeypatch.setenv("FIELDID_CATALOGUE", str(catalogue))
    monkeypatch.setenv("FIELDID_MODELS", str(dest))
    monkeypatch.setenv("COLUMNS", "200")
    return dest


def test_cli_list_and_install(cli_env: Path, server: Server) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "good" in listed.output and "MIT" in listed.output and "no" in listed.output

    done = runner.invoke(app, ["models", "install", "good"])
    assert done.exit_code == 0, done.output
    assert "test licence note" in done.output
    assert (cli_env / "good.onnx").read_bytes() == PAYLOAD

    listed = runner.invoke(app, ["models", "list"])
    assert "yes" in listed.output


def test_cli_install_options_and_failures(tmp_path: Path, cli_env: Path, server: Server) -> None:
    runner = CliRunner()
    fetched = tmp_path / "fetched.onnx"
    fetched.write_bytes(PAYLOAD)
    other = tmp_path / "elsewhere"
    ok = runner.invoke(
        app, ["models", "install", "offline", "--from", str(fetched), "--dir", str(other)]
    )
    assert ok.exit_code == 0, ok.output
    assert (other / "offline.onnx").exists()

    bad = runner.invoke(app, ["models", "install", "tampered"])
    assert bad.exit_code == 1
    assert "catalogue.checksum_mismatch" in bad.output

    down = runner.invoke(app, ["models", "install", "offline", "--timeout", "5"])
    assert down.exit_code == 1
    assert "catalogue.download_failed" in down.output

    explicit = runner.invoke(app, ["models", "list", "--catalogue", str(tmp_path / "absent.json")])
    assert explicit.exit_code == 1 and "catalogue.invalid" in explicit.output
