"""The seed's pre-extracted format: frame shards + teacher-label shards, and shard merging.

A shard is a pair of compressed ``.npz`` files with the same number of samples ``N``:

* frames ``<name>_frames.npz``: ``frames`` (N, 4 cams, 4 frames, H, W, 3) uint8.
* labels ``<name>_labels.npz``:

  ==================  ====================  ============================================
  key                 shape / dtype         meaning
  ==================  ====================  ============================================
  trajectory_xyz      (N, 64, 3) float32    future positions (m), ego frame at t0, 10 Hz
  trajectory_rot      (N, 64, 3, 3) float32 future orientations (rotation matrices)
  coc_embeddings      (N, 384) float32      sentence embedding of the teacher reasoning
  ego_history_xyz     (N, 16, 3) float32    history positions (m), last = t0 (origin)
  ego_history_rot     (N, 16, 3, 3) float32 history orientations
  coc_text            (N,) str (optional)   the teacher's chain-of-causation text
  sample_id           (N,) str (optional)
  ==================  ====================  ============================================

:func:`merge_shards` validates every shard (keys, shapes, equal N between frames and labels,
finite values) and writes one index (``data_list`` rows ``{frames_file, labels_file, row}``)
so many shards train as one dataset.
"""
import os.path as osp
import pickle

import numpy as np

__all__ = ['LABEL_SHAPES', 'validate_labels', 'load_labels', 'merge_shards', 'write_shard']

LABEL_SHAPES = dict(trajectory_xyz=(64, 3), trajectory_rot=(64, 3, 3), coc_embeddings=(384,),
                    ego_history_xyz=(16, 3), ego_history_rot=(16, 3, 3))


def validate_labels(labels, path, num_future=64, num_history=16, embed_dim=384):
    """Check the label arrays of one shard.

    Args:
        labels (Mapping[str, ndarray]): the arrays.
        path (str): the file (for messages).
        num_future (int): expected T.
        num_history (int): expected H.
        embed_dim (int): expected embedding size.

    Returns:
        int: N.

    Raises:
        KeyError: a required key is missing (names file and key).
        ValueError: wrong shape, inconsistent N or non-finite values (names file and key).
    """
    shapes = dict(trajectory_xyz=(num_future, 3), trajectory_rot=(num_future, 3, 3),
                  coc_embeddings=(embed_dim,), ego_history_xyz=(num_history, 3),
                  ego_history_rot=(num_history, 3, 3))
    num = None
    for key, shape in shapes.items():
        if key not in labels:
            raise KeyError(f'{path}: missing label key {key!r} (has {sorted(labels)})')
        arr = labels[key]
        if tuple(arr.shape[1:]) != shape:
            raise ValueError(f'{path}: {key} has shape {tuple(arr.shape)}, expected (N, '
                             f'{", ".join(map(str, shape))})')
        if num is None:
            num = arr.shape[0]
        elif arr.shape[0] != num:
            raise ValueError(f'{path}: {key} has N={arr.shape[0]} but trajectory_xyz has N={num}')
        if not np.isfinite(arr).all():
            bad = np.unique(np.nonzero(~np.isfinite(arr.reshape(len(arr), -1)))[0])
            raise ValueError(f'{path}: {key} contains NaN/inf (samples {bad[:10].tolist()})')
    return num


def load_labels(path):
    """Load and validate a label shard; return a dict of arrays.

    Raises:
        FileNotFoundError: if the file is missing.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'teacher label file not found: {path}')
    with np.load(path, allow_pickle=False) as data:
        labels = {k: data[k] for k in data.files}
    validate_labels(labels, path)
    return labels


def write_shard(out_prefix, frames, labels):
    """Write ``<out_prefix>_frames.npz`` and ``<out_prefix>_labels.npz`` after validation.

    Args:
        out_prefix (str): path prefix.
        frames (ndarray): (N, 4, 4, H, W, 3) uint8.
        labels (dict[str, ndarray]): see the module docstring.

    Returns:
        tuple[str, str]: the two paths.

    Raises:
        ValueError: on a dtype/shape problem or N mismatch.
    """
    if frames.dtype != np.uint8 or frames.ndim != 6 or frames.shape[-1] != 3:
        raise ValueError(f'{out_prefix}: frames must be (N, cams, frames, H, W, 3) uint8, got '
                         f'{frames.shape} {frames.dtype}')
    num = validate_labels(labels, out_prefix + '_labels.npz')
    if num != len(frames):
        raise ValueError(f'{out_prefix}: {len(frames)} frame samples but {num} label samples')
    fpath, lpath = out_prefix + '_frames.npz', out_prefix + '_labels.npz'
    np.savez_compressed(fpath, frames=frames)
    np.savez_compressed(lpath, **labels)
    return fpath, lpath


def merge_shards(shards, out_file, root=None):
    """Validate shards and write one index over all of them.

    Args:
        shards (list[tuple[str, str]]): (frames file, labels file) pairs.
        out_file (str): index ``.pkl`` to write.
        root (str | None): paths in the index are made relative to it (default: the index
            folder).

    Returns:
        int: total number of samples.

    Raises:
        FileNotFoundError: a shard file is missing (named).
        ValueError: frames and labels disagree on N, or labels are invalid (named).
    """
    root = root or osp.dirname(osp.abspath(out_file))
    data_list = []
    for frames_file, labels_file in shards:
        if not osp.isfile(frames_file):
            raise FileNotFoundError(f'frame file not found: {frames_file}')
        labels = load_labels(labels_file)
        with np.load(frames_file) as data:
            if 'frames' not in data.files:
                raise KeyError(f'{frames_file}: missing key "frames"')
            n_frames = data['frames'].shape[0]
        n_labels = len(labels['trajectory_xyz'])
        if n_frames != n_labels:
            raise ValueError(f'N mismatch: {frames_file} has {n_frames} samples but '
                             f'{labels_file} has {n_labels}')
        ids = labels.get('sample_id')
        for row in range(n_labels):
            data_list.append(dict(
                frames_file=osp.relpath(osp.abspath(frames_file), root),
                labels_file=osp.relpath(osp.abspath(labels_file), root), row=row,
                sample_id=str(ids[row]) if ids is not None else
                f'{osp.basename(labels_file)}#{row}'))
    with open(out_file, 'wb') as f:
        pickle.dump(dict(metainfo=dict(dataset='seed_format', dt=0.1, num_history=16,
                                       num_future=64), data_list=data_list), f, protocol=4)
    return len(data_list)
