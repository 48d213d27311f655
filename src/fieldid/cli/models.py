"""``fieldid models``: list the model catalogue and install verified model files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from fieldid.errors import CatalogueError
from fieldid.template.catalogue import (
    Catalogue,
    install_from_file,
    install_model,
    load_catalogue,
    model_status,
    resolve_dir,
)

models_app = typer.Typer(
    help="List and install face models from the catalogue (every file is checksum-verified).",
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


@models_app.command("list")
def list_command(models_dir: DirOption = None, catalogue: CatalogueOption = None) -> None:
    """Show the catalogue's models, their licences, and whether each is installed."""
    cat = _load(catalogue)
    directory = resolve_dir(models_dir)
    table = Table(title=f"Face models (directory: {directory})", title_justify="left")
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
