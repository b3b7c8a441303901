"""Router implementations, one module per ``kind:``.

Each module registers its factory and options model with
``controller.adapters.routing.register_router`` when imported. Importing this package
imports them all, so that every kind is registered before ``controller.config`` builds
the config's schema from the registry (a new kind adds its module here).
"""

from controller.adapters.routers import file, haproxy, http, nginx, webhook

__all__ = ["file", "haproxy", "http", "nginx", "webhook"]
