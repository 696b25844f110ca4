"""Where the programme catalogue comes from: the file shipped with the service plus operator files.

The only file I/O of the catalogue, kept out of the pure `catalogue`/`domain` modules.
"""

from __future__ import annotations

from pathlib import Path

from iioe.reference.programmes import PROGRAMMES_FILE
from services.certification.catalogue import CatalogueError, ProgrammeCatalogue

__all__ = ["BUILTIN_CATALOGUE_PATH", "builtin_catalogue", "load_catalogue", "read_catalogue_file"]

BUILTIN_CATALOGUE_PATH = PROGRAMMES_FILE
"""The shipped catalogue: reference data owned by `shared/iioe/reference`, validated strictly here."""


def load_catalogue(*extra_paths: str | Path) -> ProgrammeCatalogue:
    """The shipped catalogue plus operator files (same format); an operator file may only add programmes."""
    documents = [read_catalogue_file(BUILTIN_CATALOGUE_PATH), *(read_catalogue_file(Path(p)) for p in extra_paths)]
    return ProgrammeCatalogue.from_documents(documents)


def builtin_catalogue() -> ProgrammeCatalogue:
    """The catalogue shipped with the service (IIOE AI programme and the digital-pedagogy track)."""
    return load_catalogue()


def read_catalogue_file(path: Path) -> tuple[str, str]:
    """(source name, text) of one catalogue file, or a `CatalogueError` that names it."""
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read catalogue: {exc.strerror or exc}") from None
