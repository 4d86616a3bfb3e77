"""Reading RLDS episodes (Open X-Embodiment / BridgeData layout) without TensorFlow.

An RLDS dataset written by TensorFlow Datasets stores one episode per ``tf.train.Example``
record in TFRecord files. The steps of an episode are flattened into per-feature lists:
``steps/action`` holds ``T * 7`` floats, ``steps/observation/image_0`` holds ``T`` JPEG byte
strings, ``steps/language_instruction`` ``T`` UTF-8 strings, and ``episode_metadata/*`` the
per-episode fields. This module parses those records with the pure-Python ``tfrecord`` package
and returns plain numpy arrays, so the sensor VLA and the video world model share one reader.

**Warning about the bundled BridgeData debug set** (``data/bridge/``): its ``train`` and ``val``
TFRecord files hold the *same* 25 episodes in a different order (checked by content: every val
episode equals a train episode in actions and images). Using the val file as held-out data
would measure fit, not generalisation. :func:`split_episodes` splits the unique episodes by
episode identity (``file_path`` + ``episode_id``) instead; :func:`read_bridge_split` applies it.

Source of the layout: the RLDS specification (Ramos et al., "RLDS: an Ecosystem to Generate,
Share and Use Datasets in Reinforcement Learning", 2021) and the TFDS feature description
shipped with each dataset (``features.json``).
"""
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence

import cv2
import numpy as np

STEP_PREFIX = 'steps/'
OBS_PREFIX = 'steps/observation/'
META_PREFIX = 'episode_metadata/'


class RLDSFormatError(ValueError):
    """An RLDS record that does not have the expected fields or shapes."""


def decode_jpeg(data: bytes, where: str) -> np.ndarray:
    """Decode one encoded image (JPEG / PNG) into RGB.

    Args:
        data (bytes): The encoded image.
        where (str): Location used in the error message (file, episode, step, view).

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image.

    Raises:
        RLDSFormatError: If the bytes are not a decodable image.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise RLDSFormatError(f'{where}: image bytes ({len(data)} B) could not be decoded')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _per_step(record: dict, key: str, num_steps: int, where: str) -> np.ndarray:
    """Reshape a flattened per-step float / int feature into ``(T, D)`` (or ``(T,)``)."""
    arr = np.asarray(record[key])
    if arr.size % num_steps:
        raise RLDSFormatError(f'{where}: feature {key!r} has {arr.size} values, not a multiple '
                              f'of the {num_steps} steps of the episode')
    dim = arr.size // num_steps
    return arr.reshape(num_steps, dim) if dim > 1 else arr.reshape(num_steps)


def _text(values) -> List[str]:
    """Decode a list / array of UTF-8 byte strings."""
    if isinstance(values, (bytes, str)):
        values = [values]
    return [v.decode('utf-8') if isinstance(v, (bytes, np.bytes_)) else str(v) for v in values]


def parse_rlds_episode(record: dict, where: str = 'episode',
                       image_keys: Optional[Sequence[str]] = None,
                       decode_images: bool = True) -> dict:
    """Turn one parsed RLDS ``tf.train.Example`` into an episode dict.

    Args:
        record (dict): Feature name -> value, as returned by ``tfrecord.reader.tfrecord_loader``.
        where (str): Location for error messages (e.g. ``'file.tfrecord, episode 3'``).
        image_keys (Sequence[str], optional): Observation image features to keep (e.g.
            ``('image_0',)``). Defaults to every ``steps/observation/image*`` feature.
        decode_images (bool): Decode the JPEG bytes to arrays. With False, ``images`` holds the
            encoded bytes per step. Defaults to True.

    Returns:
        dict: ``num_steps`` (int T); ``action`` ``(T, A)`` float32; ``state`` ``(T, S)`` float32
        (when present); ``images`` {view: ``(T, H, W, 3)`` uint8 RGB, or a list of T bytes};
        ``has_image`` {view: bool} from the episode metadata (True when not recorded);
        ``language_instruction`` str (the first step's; ``instructions`` holds all T);
        ``is_first`` / ``is_last`` / ``is_terminal`` ``(T,)`` bool; ``reward`` / ``discount``
        ``(T,)`` float32 when present; ``episode_id`` int or None; ``file_path`` str or None.

    Raises:
        RLDSFormatError: A missing ``steps/action`` feature, per-step lengths that disagree with
            the number of steps, or an undecodable image (the message names ``where``, the step
            and the view).
    """
    if STEP_PREFIX + 'action' not in record:
        raise RLDSFormatError(f'{where}: no "steps/action" feature (keys: {sorted(record)})')
    if STEP_PREFIX + 'is_first' in record:
        num_steps = int(np.asarray(record[STEP_PREFIX + 'is_first']).size)
    else:
        num_steps = len(record.get(STEP_PREFIX + 'language_instruction', [])) or None
    if not num_steps:
        raise RLDSFormatError(f'{where}: cannot tell the number of steps (no "steps/is_first" '
                              'and no "steps/language_instruction")')
    ep: Dict = dict(num_steps=num_steps)
    ep['action'] = _per_step(record, STEP_PREFIX + 'action', num_steps, where).astype(np.float32)
    if ep['action'].ndim == 1:
        ep['action'] = ep['action'][:, None]
    if OBS_PREFIX + 'state' in record:
        state = _per_step(record, OBS_PREFIX + 'state', num_steps, where).astype(np.float32)
        ep['state'] = state[:, None] if state.ndim == 1 else state
    for key in ('is_first', 'is_last', 'is_terminal'):
        if STEP_PREFIX + key in record:
            ep[key] = _per_step(record, STEP_PREFIX + key, num_steps, where).astype(bool)
    for key in ('reward', 'discount'):
        if STEP_PREFIX + key in record:
            ep[key] = _per_step(record, STEP_PREFIX + key, num_steps, where).astype(np.float32)
    instr = _text(record.get(STEP_PREFIX + 'language_instruction', [''] * num_steps))
    if len(instr) != num_steps:
        raise RLDSFormatError(f'{where}: {len(instr)} language instructions for {num_steps} steps')
    ep['instructions'] = instr
    ep['language_instruction'] = instr[0]

    views = sorted(k[len(OBS_PREFIX):] for k in record
                   if k.startswith(OBS_PREFIX + 'image'))
    if image_keys is not None:
        missing = [k for k in image_keys if k not in views]
        if missing:
            raise RLDSFormatError(f'{where}: image features {missing} not in the record '
                                  f'(has {views})')
        views = list(image_keys)
    ep['images'], ep['has_image'] = {}, {}
    for view in views:
        raw = list(record[OBS_PREFIX + view])
        if len(raw) != num_steps:
            raise RLDSFormatError(f'{where}: {len(raw)} {view} images for {num_steps} steps')
        has = record.get(f'{META_PREFIX}has_{view}')
        ep['has_image'][view] = bool(np.asarray(has).reshape(-1)[0]) if has is not None else True
        if decode_images:
            ep['images'][view] = np.stack([
                decode_jpeg(bytes(b), f'{where}, step {t}, view {view}')
                for t, b in enumerate(raw)])
        else:
            ep['images'][view] = [bytes(b) for b in raw]
    eid = record.get(META_PREFIX + 'episode_id')
    ep['episode_id'] = int(np.asarray(eid).reshape(-1)[0]) if eid is not None else None
    fpath = record.get(META_PREFIX + 'file_path')
    ep['file_path'] = _text(fpath)[0] if fpath is not None else None
    return ep


def iter_rlds_episodes(path: str, image_keys: Optional[Sequence[str]] = None,
                       decode_images: bool = True) -> Iterator[dict]:
    """Yield the episodes of one RLDS TFRecord file in file order.

    Args:
        path (str): A ``*.tfrecord*`` file.
        image_keys (Sequence[str], optional): See :func:`parse_rlds_episode`.
        decode_images (bool): See :func:`parse_rlds_episode`.

    Yields:
        dict: One episode per record (see :func:`parse_rlds_episode`), with ``index`` (the
        record's position in the file) and ``source`` (``path``) added.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RLDSFormatError: For a malformed record (names the file and the record index).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'RLDS TFRecord file not found: {path}')
    from tfrecord.reader import tfrecord_loader
    for i, record in enumerate(tfrecord_loader(path, None)):
        ep = parse_rlds_episode(record, f'{path}, episode {i}', image_keys, decode_images)
        ep['index'] = i
        ep['source'] = path
        yield ep


def read_rlds_episodes(path: str, image_keys: Optional[Sequence[str]] = None,
                       decode_images: bool = True) -> List[dict]:
    """Read every episode of one RLDS TFRecord file (see :func:`iter_rlds_episodes`).

    Example:
        >>> eps = read_rlds_episodes('data/bridge/bridge_dataset-val.tfrecord-00000-of-00001')
        >>> eps[0]['images']['image_0'].shape, eps[0]['action'].shape
        ((10, 64, 64, 3), (10, 7))
    """
    return list(iter_rlds_episodes(path, image_keys, decode_images))


def episode_key(ep: dict) -> str:
    """A stable identity of an episode: ``'<file_path>#<episode_id>'`` (source path and record
    index when the metadata is missing)."""
    if ep.get('file_path') is not None and ep.get('episode_id') is not None:
        return f"{ep['file_path']}#{ep['episode_id']}"
    return f"{ep.get('source')}#record{ep.get('index')}"


def split_episodes(episodes: Sequence[dict], val_fraction: float = 0.24,
                   group_key: str = 'language_instruction') -> Dict[str, List[dict]]:
    """Split episodes into train / val by episode, deduplicated, stratified by task.

    Duplicates (same :func:`episode_key`) are kept once. Within each group (by default the
    language instruction, i.e. the task) episodes are ordered by key and every
    ``round(1 / val_fraction)``-th one goes to val, starting with the last, so every task is
    represented in both splits when it has at least two episodes. Deterministic: no RNG.

    Args:
        episodes (Sequence[dict]): Episodes from :func:`read_rlds_episodes` (any files).
        val_fraction (float): Approximate share of val episodes, in (0, 1). Defaults to 0.24.
        group_key (str): Episode field to stratify by. Defaults to ``'language_instruction'``.

    Returns:
        dict: ``{'train': [...], 'val': [...]}`` lists of episode dicts, each sorted by key.

    Raises:
        ValueError: If ``val_fraction`` is not in (0, 1).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}')
    unique: Dict[str, dict] = {}
    for ep in episodes:
        unique.setdefault(episode_key(ep), ep)
    groups: Dict[str, List[str]] = {}
    for key, ep in unique.items():
        groups.setdefault(str(ep.get(group_key)), []).append(key)
    step = max(2, int(round(1.0 / val_fraction)))
    val_keys = set()
    for keys in groups.values():
        keys = sorted(keys)
        if len(keys) >= 2:
            val_keys.update(keys[len(keys) - 1::-step])
    out = {'train': [], 'val': []}
    for key in sorted(unique):
        out['val' if key in val_keys else 'train'].append(unique[key])
    return out


def read_bridge_split(data_root: str, split: str, val_fraction: float = 0.24,
                      image_keys: Optional[Sequence[str]] = None,
                      decode_images: bool = True) -> List[dict]:
    """The train or val episodes of a BridgeData RLDS folder, split by episode.

    Reads every ``*.tfrecord*`` file under ``data_root`` (train and val files alike), removes
    duplicate episodes and splits the rest with :func:`split_episodes`, so no episode is in both
    splits even when the release's val file repeats train episodes (as the bundled debug set
    does).

    Args:
        data_root (str): Folder with the ``bridge_dataset-*.tfrecord-*`` files.
        split (str): ``'train'`` or ``'val'``.
        val_fraction (float): See :func:`split_episodes`.
        image_keys, decode_images: See :func:`parse_rlds_episode`.

    Returns:
        list[dict]: The split's episodes, sorted by :func:`episode_key`.

    Raises:
        FileNotFoundError: If ``data_root`` holds no TFRecord file.
        ValueError: For an unknown ``split``.
    """
    import glob
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    files = sorted(glob.glob(osp.join(data_root, '*.tfrecord*')))
    if not files:
        raise FileNotFoundError(f'no *.tfrecord* file in {data_root}')
    episodes = [ep for f in files for ep in iter_rlds_episodes(f, image_keys, decode_images)]
    return split_episodes(episodes, val_fraction)[split]
