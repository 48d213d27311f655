"""Persisted searches and their human adjudication: the only place "identified" can be recorded."""
