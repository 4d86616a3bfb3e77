"""TorchScript export of the students: parity with eager on real ScenarioNet windows."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

import projects
from projects.drive_distill.deploy import StudentExportWrapper, max_abs_diff

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'tools', 'deployment'))


@pytest.mark.parametrize('name', ['nuscenes_vector_unicycle', 'nuscenes_raster_unicycle'])
def test_export_cli_parity_on_new_inputs(tmp_path, name):
    import export_student
    projects.register_all_modules()
    init_default_scope('projects')
    from projects.registry import DATASETS, MODELS
    cfg = Config.fromfile(osp.join(ROOT, f'configs/drive_distill/{name}.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.nn.init.normal_(model.traj_head.weight, std=0.05)  # a non-trivial (non-CV) student
    ckpt = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'student.pt')
    diff = export_student.main([osp.join(ROOT, f'configs/drive_distill/{name}.py'), ckpt,
                                '--out', out, '--num-samples', '2'])
    assert diff < 1e-4
    # the traced module generalises: other real windows, another batch size
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = default_collate([dataset[i] for i in range(20, 25)])
    names = export_student.input_names_from_config(cfg)
    args = [batch['inputs'][k] for k in names]
    model.eval()
    with torch.no_grad():
        eager = StudentExportWrapper(model, names)(*args)
        exported = torch.jit.load(out)(*args)
    assert exported[0].shape == (5, 1, 64, 3)
    assert max_abs_diff(eager, exported) < 1e-4
    assert eager[0].abs().max() > 1.0  # real trajectories, not a trivial output
