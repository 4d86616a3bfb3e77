"""Index-file datasets of the drive-distill students.

:class:`DriveDistillDataset` reads an ``ann_file`` (``.pkl``/``.json`` with ``metainfo`` and
``data_list``) written by a converter of ``tools/data_converter/`` and resolves the file paths
of each entry against ``data_root``; loading happens in the pipeline transforms.
"""
import os.path as osp

from mmengine.dataset import BaseDataset

from projects.registry import DATASETS

__all__ = ['DriveDistillDataset']

_PATH_KEYS = ('scene_file', 'frames_file', 'labels_file')


@DATASETS.register_module()
class DriveDistillDataset(BaseDataset):
    """Windows of ego trajectories with their scene context or camera frames.

    Entries are either scenario windows ``{scene_file, t0, sample_id}`` (ScenarioNet / AV2
    converters) or seed-format rows ``{frames_file, labels_file, row, sample_id}`` (see
    :mod:`projects.drive_distill.converters.seed_format`).

    Args:
        ann_file (str): index file.
        data_root (str): root the relative paths of the index are joined to.
        **kwargs: see :class:`mmengine.dataset.BaseDataset` (``pipeline``, ``test_mode``,
            ``indices`` ...).

    Raises:
        FileNotFoundError: if the index is missing (names it and the converter to run).
        ValueError: if an entry lacks ``scene_file`` and ``frames_file``.
    """

    def __init__(self, ann_file, data_root='', **kwargs):
        path = ann_file if osp.isabs(ann_file) else osp.join(data_root, ann_file)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'DriveDistillDataset: index file not found: {path}. Create it with '
                'tools/data_converter/scenarionet_to_drive.py, av2_to_drive.py or '
                'merge_shards.py')
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def parse_data_info(self, raw_data_info):
        """Make the file paths of one entry absolute (joined to ``data_root``)."""
        info = dict(raw_data_info)
        if not any(k in info for k in ('scene_file', 'frames_file')):
            raise ValueError(f'{self.ann_file}: entry without scene_file / frames_file: '
                             f'{sorted(info)}')
        for key in _PATH_KEYS:
            if key in info and not osp.isabs(info[key]):
                info[key] = osp.join(self.data_root, info[key])
        return info
