"""Identity records: what record sources say about a person, each statement with its source and
date, never turned into a determination.

Modules: ``kinds`` (one validated model per record kind), ``sources`` (registering sources),
``importer`` (CSV/JSONL/Parquet import), ``assemble`` (records, summary and conflicts for search
results), ``documents`` (documents presented at an encounter), ``checks`` (presented documents
against a candidate's records; records for redress), ``correct`` (corrections with history),
``review`` (possible-duplicate review items), ``merge`` (a supervisor's merge of two people),
``synth`` (synthetic people and records), ``api`` (what the surfaces call). The tables are in
``fieldid.store.schema.records``.
"""
