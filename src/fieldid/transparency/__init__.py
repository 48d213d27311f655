"""Transparency beyond the agency: the privacy impact assessment written from the live system
(:mod:`.pia`) and the publishable transparency report (:mod:`.public_report`), both signed with
the workspace's export key (:mod:`.signing`); small counts suppressed by :mod:`.cells`.

Layer: beside :mod:`fieldid.report`, whose query helpers it reads through; below the CLI.
"""
