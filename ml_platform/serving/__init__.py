"""Model serving: a model server per variant and a weighted router in front of them.

    from ml_platform.serving import create_app, create_router_app, RouterState, VariantSpec

Processes: ``python -m ml_platform.serving.server`` and ``python -m ml_platform.serving.router``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_platform.serving.digest import directory_digest
    from ml_platform.serving.router import create_router_app
    from ml_platform.serving.router_state import RouterState, VariantSpec
    from ml_platform.serving.schema import ColumnSpec, InputSchema, RequestRejected
    from ml_platform.serving.server import create_app

# Resolved lazily: importing server/router here would make `python -m ml_platform.serving.server`
# run a module that is already in sys.modules (runpy warns), and the router would pay for pandas.
_EXPORTS = {
    "ColumnSpec": "schema",
    "InputSchema": "schema",
    "RequestRejected": "schema",
    "RouterState": "router_state",
    "VariantSpec": "router_state",
    "create_app": "server",
    "create_router_app": "router",
    "directory_digest": "digest",
}

__all__ = [
    "ColumnSpec",
    "InputSchema",
    "RequestRejected",
    "RouterState",
    "VariantSpec",
    "create_app",
    "create_router_app",
    "directory_digest",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ml_platform.serving' has no attribute '{name}'")
    return getattr(importlib.import_module(f"ml_platform.serving.{_EXPORTS[name]}"), name)
