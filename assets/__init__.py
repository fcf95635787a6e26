"""Dagster assets: thin adapters over ml_platform, one graph per model project."""
