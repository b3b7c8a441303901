"""Ingest schema revisions."""
