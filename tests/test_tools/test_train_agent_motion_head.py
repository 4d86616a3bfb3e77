"""tools/analysis_tools/train_agent_motion_head.py: argument checks (the head-only run itself
is what configs/README.md's 'Which agent forecast' table was measured with)."""
import importlib.util
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'train_agent_motion_head.py')
    spec = importlib.util.spec_from_file_location('train_agent_motion_head', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_refuses_to_overwrite_results(tmp_path):
    (tmp_path / 'metrics.json').write_text('{}')
    with pytest.raises(FileExistsError, match='--overwrite'):
        _tool().main([osp.join(ROOT, 'configs', 'test_local.py'), 'missing.pth',
                      str(tmp_path)])
    assert (tmp_path / 'metrics.json').read_text() == '{}'


def test_needs_a_config_with_the_head(tmp_path):
    with pytest.raises(ValueError, match='model.agent_motion is not set'):
        _tool().main([osp.join(ROOT, 'configs', 'finetune_tokyo.py'), 'missing.pth',
                      str(tmp_path / 'out')])


def test_best_stay_go_by_hand():
    """The oracle continue gate keeps the tracked flow only where going on ends closer."""
    import torch
    tracked = torch.zeros(1, 2, 2, 1, 3)
    target = torch.zeros(1, 2, 2, 1, 3)
    tracked[0, :, 0, 0, 0] = torch.tensor([1.0, 2.0])  # step 1: true 1.2 -> go on
    target[0, :, 0, 0, 0] = torch.tensor([1.2, 0.9])  # step 2: |2 - 0.9| > 0.9 -> stop
    tracked[0, :, 1, 0, 1] = 1.0  # true flow 0: stopping is exact
    tracked[0, :, 0, 0, 2] = -1.0  # true +1 along x: going back is worse than stopping
    target[0, :, 0, 0, 2] = 1.0
    out = _tool().best_stay_go(tracked, target)
    assert out[0, 0, 0, 0, 0] == 1.0 and out[0, 1, 0, 0, 0] == 0.0
    assert not out[0, :, :, 0, 1:].any()


def test_agent_flow_choice_is_checked(tmp_path):
    with pytest.raises(SystemExit):
        _tool().parse_args([osp.join(ROOT, 'configs', 'test_local.py'), 'x.pth',
                            str(tmp_path), '--agent-flow', 'oracle'])
    assert _tool().parse_args([osp.join(ROOT, 'configs', 'test_local.py'), 'x.pth',
                               str(tmp_path), '--agent-flow', 'true']).agent_flow == 'true'
