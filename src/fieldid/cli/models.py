"""``fieldid models``: the bundled models (licence, provenance, model card), the catalogue of
downloadable ones, and verified installs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from fieldid.cli.auth import no_account
from fieldid.errors import CatalogueError, ModelError
from fieldid.template.bundled import bundled_model, bundled_models, model_card, verify_file
from fieldid.template.catalogue import (
    Catalogue,
    install_from_file,
    install_model,
    load_catalogue,
    model_status,
    resolve_dir,
)

models_app = typer.Typer(
    help="The bundled face models, and the catalogue's (every file is checksum-verified).",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Model directory. Default: $FIELDID_MODELS or ~/.local/share/fieldid/models.",
        file_okay=False,
    ),
]
CatalogueOption = Annotated[
    Path | None,
    typer.Option(
        "--catalogue",
        help="Use this catalogue JSON instead of the packaged one (or set $FIELDID_CATALOGUE).",
        hidden=True,
        dir_okay=False,
    ),
]


def _fail(err: CatalogueError) -> NoReturn:
    Console(stderr=True).print(
        f"[bold red]error[/] \\[{err.code}] {err.message}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code=1)


def _load(path: Path | None) -> Catalogue:
    try:
        return load_catalogue(path)
    except CatalogueError as err:
        _fail(err)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1_000_000 else f"{n / 1e3:.0f} kB"


def _bundled_table() -> Table:
    table = Table(
        title="Bundled with fieldid (no download; checked against its SHA-256 when loaded)",
        title_justify="left",
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("templates (id@version)", no_wrap=True)
    table.add_column("licence", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("checksum", no_wrap=True)
    table.add_column("provenance", overflow="fold")
    for entry in bundled_models():
        try:
            verify_file(entry)
            state = "[green]verified[/]"
        except ModelError as err:
            state = f"[red]{err.code}[/]"
        table.add_row(
            entry.name,
            str(entry.model),
            f"{entry.licence_spdx} ({entry.licence_file})",
            _size(entry.size),
            state,
            entry.provenance_text(),
        )
    return table


@models_app.command("list")
@no_account("lists the model catalogue: no workspace")
def list_command(models_dir: DirOption = None, catalogue: CatalogueOption = None) -> None:
    """Show the bundled models with their licence and provenance, then the catalogue's models
    and whether each is installed."""
    Console().print(_bundled_table())
    cat = _load(catalogue)
    directory = resolve_dir(models_dir)
    table = Table(
        title=f"Catalogue: face models to download (directory: {directory})",
        title_justify="left",
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("kind")
    table.add_column("licence")
    table.add_column("size", justify="right")
    table.add_column("installed?")
    table.add_column("source", overflow="fold")
    marks = {"installed": "[green]yes[/]", "missing": "no", "corrupt": "[red]bad checksum[/]"}
    for entry in cat.entries:
        table.add_row(
            entry.name,
            entry.kind,
            entry.licence.spdx,
            _size(entry.size),
            marks[model_status(entry, directory)],
            entry.url,
        )
    Console().print(table)


@models_app.command("install")
@no_account("installs a model file from the catalogue: no workspace")
def install_command(
    name: Annotated[str, typer.Argument(help="Model name, as `fieldid models list` shows it.")],
    models_dir: DirOption = None,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Verify and install a file you downloaded yourself instead of downloading.",
            dir_okay=False,
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Download from this mirror instead.", hidden=True)
    ] = None,
    timeout: Annotated[float, typer.Option(help="Network timeout, seconds.")] = 60.0,
    catalogue: CatalogueOption = None,
) -> None:
    """Download (or copy with --from) a model, verify its SHA-256, and install it."""
    cat = _load(catalogue)
    out = Console()
    try:
        entry = cat.get(name)
        out.print(f"[bold]{entry.name}[/] ({entry.kind}, {entry.size:,} bytes)", highlight=False)
        out.print(f"licence: {entry.licence}", highlight=False)
        out.print(f"source:  {url or entry.url}", highlight=False, soft_wrap=True)
        if from_file is not None:
            path = install_from_file(name, from_file, models_dir, catalogue=cat)
        else:
            path = install_model(name, models_dir, catalogue=cat, url_override=url, timeout=timeout)
    except CatalogueError as err:
        _fail(err)
    out.print(
        f"installed {path} (SHA-256 {entry.sha256} verified)", highlight=False, soft_wrap=True
    )


@models_app.command("show")
@no_account("prints a bundled model's card and licence: no workspace")
def show_command(
    name: Annotated[str, typer.Argument(help="A bundled model's name (`fieldid models list`).")],
) -> None:
    """Print a bundled model's model card, licence and provenance."""
    try:
        entry = bundled_model(name)
        card = model_card(name)
    except ModelError as err:
        Console(stderr=True).print(
            f"[bold red]error[/] \\[{err.code}] {err.message}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=1) from None
    out = Console()
    out.print(card, markup=False, highlight=False, soft_wrap=True)
    out.print(f"provenance: {entry.provenance_text()}", highlight=False, soft_wrap=True)
    licence = entry.path().parent / entry.licence_file
    out.print(f"\nlicence file: {licence}", highlight=False, soft_wrap=True)
    out.print(licence.read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True)
