"""Dagster sensors: thin adapters over ml_platform.triggers and ml_platform.code_source."""
