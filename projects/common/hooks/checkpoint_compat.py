"""Keep checkpoints loadable with ``torch.load(weights_only=True)``.

MMEngine's :class:`~mmengine.logging.HistoryBuffer` pickles its statistics methods through
``getattr`` (``__getstate__`` stores ``HistoryBuffer.min`` etc.), so every checkpoint that holds
the message hub needs the ``getattr`` builtin in torch's weights-only allow-list, which would
let a crafted checkpoint reach arbitrary attributes. Instead, this hook stores each buffer as a
plain dict of lists when a checkpoint is saved and rebuilds the buffers when one is loaded,
so ``--resume`` works on torch >= 2.6 with ``weights_only=True`` kept on.
"""
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from projects.registry import HOOKS

_TAG = '__history_buffer__'


def history_buffers_to_plain(log_scalars):
    """Replace :class:`HistoryBuffer` values by plain, weights-only-safe dicts.

    Args:
        log_scalars (dict): ``message_hub['log_scalars']`` of a checkpoint.

    Returns:
        dict: same keys; each buffer becomes ``{'__history_buffer__': True,
        'log_history': list[float], 'count_history': list[float], 'max_length': int}``.
    """
    out = type(log_scalars)()
    for key, value in log_scalars.items():
        if isinstance(value, HistoryBuffer):
            log_hist, count_hist = value.data
            value = {_TAG: True,
                     'log_history': [float(v) for v in log_hist],
                     'count_history': [float(v) for v in count_hist],
                     'max_length': int(value.max_length)}
        out[key] = value
    return out


def plain_to_history_buffers(log_scalars):
    """Inverse of :func:`history_buffers_to_plain` (other values pass through).

    Args:
        log_scalars (dict): ``message_hub['log_scalars']`` as loaded.

    Returns:
        dict: same keys with :class:`HistoryBuffer` values restored.
    """
    out = type(log_scalars)()
    for key, value in log_scalars.items():
        if isinstance(value, dict) and value.get(_TAG):
            value = HistoryBuffer(value['log_history'], value['count_history'],
                                  value['max_length'])
        out[key] = value
    return out


@HOOKS.register_module()
class CheckpointCompatHook(Hook):
    """Save message-hub buffers as plain data and restore them on load.

    Added to every config through ``configs/_base_/default_runtime.py``. Runs first on save
    (``priority='VERY_HIGH'``) so other hooks see the converted checkpoint.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint):
        """Convert ``checkpoint['message_hub']['log_scalars']`` in place."""
        hub = checkpoint.get('message_hub')
        if hub and 'log_scalars' in hub:
            hub['log_scalars'] = history_buffers_to_plain(hub['log_scalars'])

    def after_load_checkpoint(self, runner, checkpoint):
        """Restore :class:`HistoryBuffer` objects before the runner resumes them."""
        hub = checkpoint.get('message_hub')
        if hub and 'log_scalars' in hub:
            hub['log_scalars'] = plain_to_history_buffers(hub['log_scalars'])
