"""tools/misc/browse_dataset.py draws the windows a config's dataset produces."""
import os.path as osp
import sys

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'misc'))
import browse_dataset  # noqa: E402

DATA = osp.join(ROOT, 'data', 'tokyo_local', 'aerialworld_infos_val.pkl')


def test_window_indices_and_labels():
    assert browse_dataset.window_indices(72, 3) == [0, 36, 71]
    assert browse_dataset.window_indices(2, 8) == [0, 1]
    meta = dict(num_history=4, timestamps=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert browse_dataset.frame_labels(meta, 6) == [
        't-3 (-1.5s)', 't-2 (-1.0s)', 't-1 (-0.5s)', 't0 (+0.0s)', 't+1 (+0.5s)', 't+2 (+1.0s)']


def test_draws_bev_and_3d_panels_of_the_config_windows(tmp_path):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` first')
    import cv2
    out = tmp_path / 'browse'
    config = osp.join(ROOT, 'configs', 'test_local.py')
    written = browse_dataset.main([config, '--split', 'val', '--max-windows', '2',
                                   '--output-dir', str(out), '--tile-size', '64'])
    assert len(written) == 4 and all(osp.isfile(p) for p in written)
    bev = [p for p in written if p.endswith('_bev.png')]
    assert len(bev) == 2 and sum(p.endswith('_3d.png') for p in written) == 2
    image = cv2.imread(bev[0])
    # 10 frame columns of 64-pixel tiles (4 history + 6 future), two BEV rows (class, height)
    assert image.shape[1] >= 10 * 64 and image.shape[0] >= 2 * 64
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # not a blank canvas
    # a non-empty output folder is refused without --overwrite
    with pytest.raises(SystemExit, match='--overwrite'):
        browse_dataset.main([config, '--split', 'val', '--output-dir', str(out)])
    # --cfg-options reach the dataset: a missing split is a clear error
    with pytest.raises(SystemExit, match='no test_dataloader.dataset'):
        browse_dataset.main([config, '--split', 'test', '--output-dir', str(tmp_path / 'x'),
                             '--cfg-options', 'test_dataloader=None'])
