"""Seed-format shard from the real nuScenes demo keyframe (scene-0061, first sample).

Frames: the CAM_FRONT, CAM_FRONT_LEFT, CAM_FRONT_RIGHT and CAM_BACK JPEGs of the mmdet3d demo
keyframe, resized to ``size``; the demo has one keyframe, so the 4 frame slots repeat it.
Labels: the logged ego future of scene-0061 from its ScenarioNet scenario (the keyframe is the
scene's first sample, t0 = step 0; the 16-step history is padded with the first pose, which
is what a vehicle observed from rest-free start looks like to the model: zero history
velocity). The reasoning embedding is the all-MiniLM-L6-v2 embedding of a description of
the logged manoeuvre (:func:`projects.drive_distill.converters.teacher.describe_trajectory`).
"""
import glob
import os
import os.path as osp

import cv2
import numpy as np

from projects.common.structures.trajectory import rotation_from_yaw
from .scenarionet import convert_scenario
from .seed_format import merge_shards, write_shard

__all__ = ['build_camera_demo', 'CAMERAS']

CAMERAS = ('CAM_FRONT', 'CAM_FRONT_LEFT', 'CAM_FRONT_RIGHT', 'CAM_BACK')


def build_camera_demo(image_dir, scenario_file, out_dir, size=(128, 224), embed=True):
    """Write ``demo_frames.npz``, ``demo_labels.npz`` and ``infos.pkl`` into ``out_dir``.

    Args:
        image_dir (str): folder with the 4 camera JPEGs (names contain ``__CAM_X__``).
        scenario_file (str): ScenarioNet pickle of scene-0061.
        out_dir (str): output folder.
        size (tuple[int]): (H, W) of the stored frames.
        embed (bool): compute the MiniLM reasoning embedding (else zeros).

    Returns:
        str: the index path.

    Raises:
        FileNotFoundError: if a camera image is missing (named).
    """
    imgs = []
    for cam in CAMERAS:
        found = glob.glob(osp.join(image_dir, f'*__{cam}__*.jpg'))
        if not found:
            raise FileNotFoundError(f'no {cam} image in {image_dir}')
        img = cv2.imread(found[0])[:, :, ::-1]
        imgs.append(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    frames = np.stack([np.stack([im] * 4) for im in imgs])[None].astype(np.uint8)
    _, scene = convert_scenario(scenario_file)
    xy, yaw = scene['ego_xy'], scene['ego_yaw']
    c, s = np.cos(yaw[0]), np.sin(yaw[0])
    d = xy[1:65] - xy[0]
    fut = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], np.zeros(64)], -1)
    fyaw = np.remainder(yaw[1:65] - yaw[0] + np.pi, 2 * np.pi) - np.pi
    from .teacher import describe_trajectory, embed_texts
    text = describe_trajectory(fut[:, :2], fyaw)
    emb = embed_texts([text]) if embed else np.zeros((1, 384), np.float32)
    labels = dict(trajectory_xyz=fut[None].astype(np.float32),
                  trajectory_rot=rotation_from_yaw(fyaw)[None].astype(np.float32),
                  coc_embeddings=emb.astype(np.float32),
                  ego_history_xyz=np.zeros((1, 16, 3), np.float32),
                  ego_history_rot=np.repeat(np.eye(3)[None, None], 16, 1).astype(np.float32),
                  coc_text=np.array([text]), sample_id=np.array(['scene-0061@0']))
    os.makedirs(out_dir, exist_ok=True)
    fpath, lpath = write_shard(osp.join(out_dir, 'demo'), frames, labels)
    index = osp.join(out_dir, 'infos.pkl')
    merge_shards([(fpath, lpath)], index)
    return index
