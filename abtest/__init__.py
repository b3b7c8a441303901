"""abtest package."""
