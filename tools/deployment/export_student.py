"""Export a trained drive-distill student to TorchScript and check parity with eager PyTorch.

Usage:
    python tools/deployment/export_student.py CONFIG CHECKPOINT [--out student.pt]
        [--num-samples 4] [--tolerance 1e-4]

The student is traced on real samples of the config's test split (the first
``--num-samples`` windows), saved, reloaded and compared with the eager model; the command
fails when the max abs difference exceeds ``--tolerance``. Inputs of the exported module (in
order): the modality tensors of the config's ``PackDriveInputs.input_keys``, then ``ego_hist``
and ``hist_xy``; outputs ``traj`` (B, K, T, 3) and ``mode_probs`` (B, K). ONNX is not offered:
``onnxruntime`` (needed for an ONNX parity check) is not part of this environment.
See :mod:`projects.drive_distill.deploy`.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.dataset import default_collate  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import load_checkpoint  # noqa: E402

import projects  # noqa: E402
from projects.drive_distill.deploy import export_torchscript  # noqa: E402


def input_names_from_config(cfg):
    """Positional input order: ``PackDriveInputs.input_keys`` + ``ego_hist``, ``hist_xy``.

    Raises:
        KeyError: if the test pipeline has no ``PackDriveInputs``.
    """
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'PackDriveInputs':
            return tuple(step.get('input_keys', ('agent_feats', 'agent_mask', 'map_feats',
                                                 'map_mask'))) + ('ego_hist', 'hist_xy')
    raise KeyError('export_student: the test pipeline has no PackDriveInputs')


def main(argv=None):
    """Build, load, trace, save, reload, compare; print the difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='output .pt (default: next to the checkpoint)')
    parser.add_argument('--num-samples', type=int, default=4)
    parser.add_argument('--tolerance', type=float, default=1e-4)
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'export_student.py: error: checkpoint not found: {args.checkpoint}')
    projects.register_all_modules()
    init_default_scope('projects')
    from projects.registry import DATASETS, MODELS
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = default_collate([dataset[i] for i in range(min(args.num_samples, len(dataset)))])
    names = input_names_from_config(cfg)
    out = args.out or osp.splitext(args.checkpoint)[0] + '_torchscript.pt'
    torch.manual_seed(0)
    diff = export_torchscript(model, batch['inputs'], names, out, args.tolerance)
    print(f'wrote {out}: inputs {list(names)}; max abs diff vs eager on '
          f'{len(batch["data_samples"]["sample_id"])} real samples: {diff:.3g}')
    return diff


if __name__ == '__main__':
    main()
