"""mmembodied: registry-driven training of embodied multimodal models on MMEngine.

Importing this package registers every model, dataset, transform, metric and hook of the
codebase in the registries of :mod:`projects.registry` and allow-lists the numpy globals that
MMEngine checkpoints need under ``torch.load(weights_only=True)``.
"""
__version__ = '0.1.0'


def register_all_modules():
    """Import every module that registers components (idempotent).

    Returns:
        None. Raises the underlying ``ImportError`` when a registered module cannot be
        imported (a broken install should fail loudly, not build half a registry).
    """
    import importlib

    from projects.common.utils.checkpoint import register_checkpoint_safe_globals
    from projects.registry import (_DATA_LOCATIONS, _ENGINE_LOCATIONS, _HOOK_LOCATIONS,
                                   _METRIC_LOCATIONS, _MODEL_LOCATIONS, _TRANSFORM_LOCATIONS)
    register_checkpoint_safe_globals()
    for loc in (_MODEL_LOCATIONS + _DATA_LOCATIONS + _TRANSFORM_LOCATIONS + _METRIC_LOCATIONS
                + _HOOK_LOCATIONS + _ENGINE_LOCATIONS):
        importlib.import_module(loc)



register_all_modules()
