"""Controller schema revisions."""
