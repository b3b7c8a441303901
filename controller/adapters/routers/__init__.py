"""Router implementations, one module per ``kind:``.

Each module registers its factory with ``controller.adapters.routing.register_router`` when
imported; importing the module is what makes its kind known to config validation.
"""
