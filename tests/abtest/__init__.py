"""Tests of the abtest package, mirroring its modules."""
