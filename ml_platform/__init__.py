"""ml_platform: the domain of the ML CI/CD platform (plain Python, no dagster imports)."""

__version__ = "0.1.0"
