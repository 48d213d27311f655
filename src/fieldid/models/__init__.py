"""Model files that ship inside the package (data only; the code is in ``fieldid.template``).

``bundled.json`` lists each model with its checksum, licence, provenance and model card;
``fieldid.template.bundled`` reads it and loads the weights, checked, on first use.
"""
