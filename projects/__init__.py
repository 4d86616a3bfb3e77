"""mmembodied: registry-driven training of embodied multimodal models on MMEngine.

Importing this package registers every model, dataset, transform, metric and hook of the
codebase in the registries of :mod:`projects.registry`.
"""
__version__ = '0.1.0'
