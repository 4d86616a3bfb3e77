"""Deployment export of a trained student (TorchScript) with an eager-vs-exported parity check.

The exported module takes the packed input tensors positionally, in the order of
``input_names`` (the modality keys of the config's ``PackDriveInputs`` followed by
``ego_hist`` (B, H, 6) and ``hist_xy`` (B, H, 2)), and returns

* ``traj`` (B, K, T, 3) float ``[x, y, yaw]`` per mode (metres / radians, ego frame at t0),
* ``mode_probs`` (B, K) float (softmax of the mode logits; 1 for single-mode students).
"""
import torch
import torch.nn as nn

__all__ = ['StudentExportWrapper', 'export_torchscript', 'max_abs_diff']


class StudentExportWrapper(nn.Module):
    """Positional-tensor front end of :class:`DrivingStudent` for tracing.

    Args:
        model (DrivingStudent): the trained student (put in eval mode).
        input_names (tuple[str]): names of the positional inputs (see the module docstring).
    """

    def __init__(self, model, input_names):
        super().__init__()
        self.model = model.eval()
        self.input_names = tuple(input_names)

    def forward(self, *tensors):
        """Return ``(traj (B, K, T, 3), mode_probs (B, K))``."""
        out = self.model.forward_features(dict(zip(self.input_names, tensors)))
        return out['traj'], torch.softmax(out['mode_logits'], -1)


def max_abs_diff(a, b):
    """Largest absolute difference over matching output tensors (float)."""
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def export_torchscript(model, inputs, input_names, path, tolerance=1e-4):
    """Trace the student on real inputs, save it, reload it and check parity with eager.

    Args:
        model (DrivingStudent): trained student.
        inputs (dict[str, Tensor]): a collated batch of packed inputs (real samples).
        input_names (tuple[str]): positional order of the exported inputs.
        path (str): output ``.pt`` file.
        tolerance (float): maximum allowed absolute difference.

    Returns:
        float: the measured max abs difference between eager and the reloaded module.

    Raises:
        KeyError: an input name is missing from ``inputs``.
        RuntimeError: the difference exceeds ``tolerance`` (the file is still written, for
            inspection; the message names it).
    """
    missing = [k for k in input_names if k not in inputs]
    if missing:
        raise KeyError(f'export_torchscript: inputs lack {missing} (have {sorted(inputs)})')
    wrapper = StudentExportWrapper(model, input_names).eval()
    args = tuple(inputs[k] for k in input_names)
    with torch.no_grad():
        eager = wrapper(*args)
        traced = torch.jit.trace(wrapper, args, check_trace=False)
    traced.save(path)
    loaded = torch.jit.load(path)
    with torch.no_grad():
        exported = loaded(*args)
    diff = max_abs_diff(eager, exported)
    if not diff <= tolerance:
        raise RuntimeError(f'{path}: exported student differs from eager by {diff:.3g} '
                           f'(> {tolerance})')
    return diff
