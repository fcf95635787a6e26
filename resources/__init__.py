"""Dagster resources: typed, injected by parameter name, wrapping ml_platform backends."""

from resources.platform import DataStoreResource, ModelRegistryResource, PlatformResource

__all__ = ["DataStoreResource", "ModelRegistryResource", "PlatformResource"]
