"""The package layers hold: a lower layer never imports a higher one, no package imports another
in a cycle, and tables are imported from the storage kernel only.

Layers, lowest first (docs/storage.md; the team's guide):

    errors, clock -> probe, detect, quality, template -> pipeline -> store, index
    -> gallery, records, search, documents, adjudication, audit, retention, redress, report
    -> workspace, transparency, service, cli, demo

with the packages the list does not name placed where their imports put them. Every import
counts (also one inside a function) except under ``if TYPE_CHECKING``. A new package must be
placed here, or this test fails and says so.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fieldid"

LAYERS: list[set[str]] = [
    # models: the bundled model files; not_checked: what fieldid does not check, as data.
    {"errors", "clock", "models", "not_checked"},
    {"probe", "detect", "quality", "template", "dataset"},
    # facework: where the pipeline runs (in the calling thread, or worker processes).
    {"pipeline", "facework", "keys"},
    # config: fieldid.toml, which names the pipeline and the vector index ([index]).
    {"store", "index", "config", "policy_file"},
    {
        "gallery",
        "records",
        "search",
        "documents",
        "adjudication",
        "audit",
        "retention",
        "redress",
        "report",
        "access",
        "calibration",
        "candidate",
        "evaluation",
        # location: coarse cells, sensitive areas and approvals (the search service applies it)
        "location",
    },
    # transparency: the PIA and the public report draw on the whole workspace (configuration,
    # retention, accounts, the audit log) through the composition root.
    # client: the HTTP client, typed by the service's answer models; library:
    # fieldid.open_workspace, the in-process API over the composition root.
    {"workspace", "transparency", "service", "cli", "demo", "client", "library"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(path: Path) -> str:
    """The package (or top-level module) a source file belongs to."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported fieldid module, line) of every import outside ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(n) for n in ast.walk(node))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fieldid"):
            out.append((node.module, node.lineno))
            out += [
                (f"{node.module}.{a.name}", node.lineno)
                for a in node.names
                if node.module == "fieldid"
            ]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("fieldid")]
    return out


def sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "migrations" not in p.relative_to(SRC).parts]


def graph() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> where (file:line)."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sources():
        src = unit(path)
        for module, line in imports(path):
            parts = module.split(".")
            if len(parts) < 2:
                continue
            dst = parts[1]
            if dst != src:
                edges[src][dst].append(f"{path.relative_to(SRC.parent)}:{line}")
    return edges


def test_every_package_has_a_layer():
    units = {unit(p) for p in sources()} - {"__init__"}
    assert units <= set(LEVEL), (
        f"place {sorted(units - set(LEVEL))} in a layer in tests/test_layers.py (and docs)"
    )


def test_no_lower_layer_imports_a_higher_one():
    wrong = [
        f"{src} (layer {LEVEL[src]}) imports {dst} (layer {LEVEL[dst]}) at {where[0]}"
        for src, targets in graph().items()
        for dst, where in targets.items()
        if src in LEVEL and dst in LEVEL and LEVEL[dst] > LEVEL[src]
    ]
    assert wrong == [], "\n".join(wrong)


def test_no_import_cycle_among_packages():
    edges = {src: set(targets) for src, targets in graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert cycles == [], f"packages importing each other: {cycles}"


def test_tables_are_imported_from_the_storage_kernel_only():
    """``fieldid.store.schema`` is the one home of the tables: no ``gallery.schema``,
    ``records.schema``… (they no longer exist), and no other module defines a table."""
    wrong = [
        f"{path.relative_to(SRC.parent)}:{line} imports {module}"
        for path in sources()
        for module, line in imports(path)
        if (module.endswith(".schema") and module != "fieldid.store.schema")
        or (".schema." in module and not module.startswith("fieldid.store.schema"))
    ]
    assert wrong == [], "\n".join(wrong)
    defining = [
        str(p.relative_to(SRC.parent))
        for p in sources()
        if "__tablename__" in p.read_text(encoding="utf-8")
        and "store" not in p.relative_to(SRC).parts[:1]
    ]
    assert defining == [], f"tables defined outside fieldid.store.schema: {defining}"


def test_the_check_itself_catches_a_lower_layer_importing_a_higher_one(tmp_path: Path):
    """The walker sees a lazy import inside a function, and ignores TYPE_CHECKING ones."""
    f = tmp_path / "m.py"
    f.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fieldid.workspace import Workspace\n"
        "def f():\n    from fieldid.service import app\n"
    )
    assert [m for m, _ in imports(f)] == ["fieldid.service"]
