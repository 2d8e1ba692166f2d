"""The engine as a service: CDS Hooks and REST over FastAPI (see docs/service.md).

FastAPI is imported only when this package is, never by the rest of the engine.
"""

from __future__ import annotations

from .app import create_app
from .config import ConfigError, ServiceConfig, load_config
from .reload import LibraryError

__all__ = ["ConfigError", "LibraryError", "ServiceConfig", "create_app", "load_config"]
