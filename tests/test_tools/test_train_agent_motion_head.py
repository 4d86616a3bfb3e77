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
