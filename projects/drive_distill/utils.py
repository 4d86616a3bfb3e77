"""Small utilities of the drive-distill system (parameter counting)."""
from mmengine.config import Config
from mmengine.registry import init_default_scope

__all__ = ['count_parameters']


def count_parameters(config):
    """Build ``config.model`` and count its parameters.

    Args:
        config (str | Config): a config file or object with a ``model`` key.

    Returns:
        dict[str, int]: ``total``, ``trainable`` and per top-level submodule counts.

    Raises:
        KeyError: if the config has no ``model``.
    """
    import projects
    from projects.registry import MODELS
    projects.register_all_modules()
    init_default_scope('projects')
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if 'model' not in cfg:
        raise KeyError(f'{config}: no `model` in the config')
    model = MODELS.build(cfg.model)
    counts = dict(total=sum(p.numel() for p in model.parameters()),
                  trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
    for name, module in model.named_children():
        counts[name] = sum(p.numel() for p in module.parameters())
    return counts
