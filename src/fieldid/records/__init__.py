"""Identity records: what record sources say about a person, each statement with its source and
date, never turned into a determination.

Modules: ``schema`` (tables), ``kinds`` (one validated model per record kind), ``importer``
(CSV/JSONL/Parquet import), ``assemble`` (records, summary and conflicts for search results),
``documents`` (documents presented at an encounter), ``correct`` (corrections with history),
``review`` (possible-duplicate review items), ``synth`` (synthetic people and records),
``training`` (the separate training gallery).

This package is imported by ``fieldid.gallery.schema`` so that its tables are part of the one
metadata; keep this file free of imports.
"""
