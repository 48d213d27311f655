"""Repositories: small query functions over a unit of work's (or a read's) session.

Domain packages keep the queries that are theirs beside their logic; what several packages need
to ask the same way lives here (``lineage``: following person merges).
"""
