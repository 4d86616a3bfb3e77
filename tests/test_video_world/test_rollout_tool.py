"""tools/misc/video_rollout.py writes predicted frames and a GIF (ground truth | prediction)."""
import os.path as osp

import pytest
import torch

from tool_runner import run_tool, tool_env


@pytest.mark.slow
def test_video_rollout_writes_frames_and_gif(tmp_path):
    from mmengine.config import Config
    from PIL import Image

    import projects
    from projects.registry import MODELS
    projects.register_all_modules()
    cfg = Config.fromfile('configs/video_world/kitti_raw.py')
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out_dir = str(tmp_path / 'rollouts')
    run_tool(['python', 'tools/misc/video_rollout.py', 'configs/video_world/kitti_raw.py', ckpt,
              '--out-dir', out_dir, '--num-clips', '1'], env=tool_env('1'))
    clip = osp.join(out_dir, '2011_09_26_drive_0023_sync_image_02@0')
    assert osp.isfile(osp.join(clip, 'pred_01.png')) and osp.isfile(osp.join(clip, 'pred_02.png'))
    side = Image.open(osp.join(clip, 'side_by_side_01.png'))
    assert side.size == (2 * 208 + 2, 64)
    gif = Image.open(osp.join(clip, 'rollout.gif'))
    assert gif.n_frames == 4  # 2 observed + 2 predicted
    with pytest.raises(AssertionError, match='--overwrite'):
        run_tool(['python', 'tools/misc/video_rollout.py', 'configs/video_world/kitti_raw.py',
                  ckpt, '--out-dir', out_dir, '--num-clips', '1'], env=tool_env('1'))
