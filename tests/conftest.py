from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fieldid.calibration.store import bundled as bundled_calibration
from fieldid.clock import Clock
from fieldid.config import DEFAULT_TOML, WorkspaceConfig
from fieldid.dataset import read_labelled
from fieldid.pipeline import make_embedder
from fieldid.workspace import Workspace
from helpers_storage import Backend, PgServer, active, using

FIXTURES = Path(__file__).parent / "fixtures"
FACES = FIXTURES / "faces"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BACKENDS = ("sqlite", "postgresql")
#: Storage and vector-index backends of the tests marked ``index_backends``: the gallery's
#: search, enrollment, deletion, merge and retention tests run on faiss-local (with SQLite and
#: PostgreSQL), on pgvector (in the workspace's PostgreSQL database, same transaction) and on
#: Milvus (a SQLite workspace, changes through the outbox).
INDEX_BACKENDS = ("sqlite", "postgresql", "postgresql+pgvector", "sqlite+milvus")

#: The key-encryption keys of the tests' workspaces go to a private folder of this session (never
#: ~/.config); processes the tests start inherit it. A key source set in the environment would
#: make every workspace share one key: the tests choose their keys themselves.
KEY_DIR = tempfile.mkdtemp(prefix="fid-keys-")
os.environ["FIELDID_KEY_DIR"] = KEY_DIR
for _var in ("FIELDID_KEK", "FIELDID_KEK_FILE", "FIELDID_KEK_COMMAND"):
    os.environ.pop(_var, None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return
    shutil.rmtree(KEY_DIR, ignore_errors=True)


#: The model of a new workspace (``fieldid init``), as its templates name it (id@version).
DEFAULT_MODEL = str(make_embedder(WorkspaceConfig.from_toml(DEFAULT_TOML).pipeline).model)


def fmr_operating_point(model: str, fmr: float = 1e-3) -> float:
    """The score at which ``model``'s bundled calibration puts the FMR per comparison at ``fmr``
    (rounded up to 4 decimals). For dlib's ResNet this is about 0.925."""
    cal = bundled_calibration(model)
    assert cal is not None, f"no bundled calibration for {model}"
    return math.ceil(cal.threshold_for_fmr(fmr) * 10_000) / 10_000


#: The fixed threshold of the test workspaces: the default model's FMR 1e-3 operating point.
TEST_THRESHOLD = fmr_operating_point(DEFAULT_MODEL)


def subject_images(subject: str) -> list[Path]:
    return sorted((FACES / subject).glob("*.jpg"))


def set_setting(cfg: str, key: str, value: object) -> str:
    """``cfg`` (fieldid.toml text) with the line ``key = …`` or ``# key = …`` set to ``value``
    (strings are quoted; None comments the setting out)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = f'"{value}"' if isinstance(value, str) else str(value)
    lines, done = [], False
    for line in cfg.splitlines():
        name = line.lstrip("# ").split("=")[0].strip()
        if not done and name == key and "=" in line:
            lines.append(f"# {key} = 0" if value is None else f"{key} = {text}")
            done = True
        else:
            lines.append(line)
    assert done, f"no setting {key} in fieldid.toml"
    return "\n".join(lines) + "\n"


def make_workspace(
    root: Path, clock: Clock | None = None, *, keep: bool = False, **gate: float
) -> Workspace:
    """A workspace on the test's backend whose quality gate admits LFW news photographs: ~42 px
    between the eyes, turned heads, bystanders in the frame. Tests of the gate itself use its
    defaults. ``keep``: its database outlives the test (a module's or session's template)."""
    ws = active().init(root, clock, keep=keep)
    ws.close()
    cfg = (root / "fieldid.toml").read_text()
    gate = {
        "min_inter_eye_px": 30.0,
        "max_abs_yaw_deg": 60.0,
        "max_abs_pitch_deg": 45.0,
        "max_faces": 3,
        **gate,
    }
    for k, v in gate.items():
        cfg = "\n".join(
            f"{k} = {v}" if line.split("=")[0].strip() == k else line for line in cfg.splitlines()
        )
    # These galleries hold 20 people: they use a fixed threshold at the default model's FMR 1e-3
    # operating point (from its bundled calibration), as an operator of a small gallery would.
    cfg = set_setting(cfg, "threshold", TEST_THRESHOLD)
    (root / "fieldid.toml").write_text(cfg)
    return Workspace.open(root, clock)


# -- storage backends --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's one PostgreSQL server (see helpers_storage), shared by the storage and the
    vector-index tests."""
    from fieldid.index.servers import ServerUnavailable

    os.environ.pop("FIELDID_DATABASE_URL", None)
    try:
        server = PgServer()
    except ServerUnavailable as e:
        pytest.fail(f"PostgreSQL is needed by the storage tests and did not start: {e}")
    yield server
    server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a storage backend runs on each of BACKENDS; tests marked
    ``index_backends`` on every vector-index backend too (INDEX_BACKENDS), the others on the
    default faiss-local only, to keep the suite lean."""
    if "backend_kind" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("index_backends") is not None
        kinds = INDEX_BACKENDS if marked else BACKENDS
        metafunc.parametrize("backend_kind", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def milvus_uri() -> Iterator[str]:
    """The session's one Milvus standalone server (fieldid.index.servers: ephemeral ports, a
    private data directory); tests that need it are skipped with the reason if it cannot
    start here."""
    from fieldid.index.servers import ServerUnavailable, milvus

    try:
        with milvus(MILVUS_TEST_CONFIG) as uri:
            yield uri
    except ServerUnavailable as e:
        pytest.skip(str(e))


#: Milvus test server: growing segments searched brute force (no interim IVF index), so tests
#: of small galleries see exact answers whether or not a segment is sealed yet.
MILVUS_TEST_CONFIG = {"queryNode.segcore.interimIndex.enableIndex": "false"}


@pytest.fixture(scope="session")
def backend_kind(request: pytest.FixtureRequest) -> Backend:
    storage, _, index = str(request.param).partition("+")
    pg = request.getfixturevalue("pg_server") if storage == "postgresql" else None
    if index == "milvus":
        uri = request.getfixturevalue("milvus_uri")
        return Backend(storage, pg, index="milvus", milvus_uri=uri)
    return Backend(storage, pg, index=index or "faiss-local")


@pytest.fixture(autouse=True)
def _storage_backend(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that depends on ``backend_kind`` (directly, or through ``backend``,
    ``enrolled``, ``service_root``…) runs with that backend active (``make_workspace``,
    ``open_copy``, ``serving`` use it); the databases it made are dropped when it ends. A test
    that does not, has no backend: making a workspace there is an error (helpers_storage)."""
    if "backend_kind" not in request.fixturenames:
        yield
        return
    kind: Backend = request.getfixturevalue("backend_kind")
    with using(kind):
        yield
    kind.drop_made()


@pytest.fixture()
def backend(backend_kind: Backend) -> Backend:
    """The storage backend of this test run (parametrised: SQLite, PostgreSQL)."""
    return backend_kind


@pytest.fixture(scope="session")
def enrolled_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


@pytest.fixture()
def enrolled_template(
    backend: Backend,
    enrolled_templates: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A workspace with every fixture person enrolled with their first image only (made once per
    backend and session; never changed: tests work on copies)."""
    if backend.name not in enrolled_templates:
        root = tmp_path_factory.mktemp(f"enrolled-{backend.name}") / "ws"
        ws = make_workspace(root, keep=True)
        items = [i for i in read_labelled(FACES) if i.path.name.endswith("_0001.jpg")]
        summary = ws.enrollment.enroll_images(
            items, operator="test", source_name="fixtures", synthetic=True
        )
        assert summary.enrolled == 20 and not summary.refused
        ws.close()
        enrolled_templates[backend.name] = root
    return enrolled_templates[backend.name]


@pytest.fixture()
def enrolled(enrolled_template: Path, backend: Backend, tmp_path: Path) -> Iterator[Workspace]:
    """A private copy of the enrolled workspace, so tests may change it."""
    root = backend.copy(enrolled_template, tmp_path / "ws")
    ws = Workspace.open(root)
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from fieldid.demo import astronaut_path

    return np.asarray(Image.open(astronaut_path()).convert("RGB"))
