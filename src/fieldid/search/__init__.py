"""1:N search and 1:1 verification."""
