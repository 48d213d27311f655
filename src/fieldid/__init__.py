"""fieldid: field identity verification that gives leads, never determinations.

The package follows the data: ``probe`` (intake) → ``detect`` (find and align the face) →
``quality`` (measure and gate) → ``template`` (embed) → ``gallery`` (enrolled templates and the
vector index) → ``search`` (1:N and 1:1) → ``candidate`` (what a search returns) → ``audit``.
``evaluation`` measures the whole chain (FTA, FMR/FNMR, FNIR/FPIR).
"""

__version__ = "0.1.0"
