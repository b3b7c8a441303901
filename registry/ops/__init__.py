"""The work behind ``ModelRegistry``, one module per concern; internal to ``registry``.

``registry.api.ModelRegistry`` is the public face and delegates here; ``common``
holds what several concerns share.
"""
