"""monitors package."""
