"""``configs/worldmodel_tokyo_fsdp.py``: MMEngine FlexibleRunner + FSDPStrategy.

Fast checks: the config selects the FlexibleRunner with the FSDP strategy, the wrap policy
names modules that exist, and ``tools/train.py`` refuses a sharded strategy without a
distributed launch. Slow end-to-end check: ``tools/dist_train.sh`` with 2 processes (gloo,
CPU FSDP) trains one iteration on the bundled Tokyo sessions with narrow widths, writes one
consolidated checkpoint that loads strictly into the non-sharded model, and
``tools/test.py configs/worldmodel_tokyo.py`` evaluates it.
"""
import os.path as osp
import socket
import sys

import pytest
import torch
from mmengine.config import Config
from tool_runner import run_tool, tool_env

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'worldmodel_tokyo_fsdp.py')
DATA = osp.join(ROOT, 'data', 'tokyo', 'aerialworld_infos_train.pkl')
sys.path.insert(0, ROOT)

TOKENIZER = dict(base_channels=8, num_res_blocks=1, num_codes=32, code_dim=16, with_cp=False)
TRANSFORMER = dict(d_model=16, num_blocks=2, num_heads=2, pose_hidden=16, spatial_scales=[1])
OPTIONS = ([f'model.tokenizer.{k}={v}' for k, v in TOKENIZER.items()]
           + [f'model.transformer.{k}={v}'.replace(' ', '') for k, v in TRANSFORMER.items()]
           + [f'{split}_dataloader.{key}' for split in ('train', 'val', 'test')
              for key in ('num_workers=0', 'persistent_workers=False')]
           + ['train_dataloader.dataset.max_windows=2', 'val_dataloader.dataset.max_windows=1',
              'test_dataloader.dataset.max_windows=1', 'model.world_occ_loss_frames=none',
              'train_cfg.max_iters=1', 'train_cfg.val_interval=1000',
              'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'])


def _tiny_model_cfg():
    cfg = Config.fromfile(CONFIG)
    cfg.model.tokenizer_ckpt = None
    cfg.model.tokenizer.update(TOKENIZER)
    cfg.model.transformer.update(TRANSFORMER)
    return cfg


def test_config_selects_flexible_runner_with_fsdp():
    cfg = Config.fromfile(CONFIG)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'FSDPStrategy' and cfg.strategy.state_dict_cfg == 'full'
    wrapper = cfg.strategy.model_wrapper
    assert wrapper.use_orig_params is True
    assert wrapper.mixed_precision.param_dtype == 'bfloat16'
    assert cfg.optim_wrapper.type == 'FSDPOptimWrapper'
    assert cfg.model.train_stage == 'world'  # the tokenizer is frozen


def test_wrap_policy_wraps_transformer_blocks():
    import projects
    from projects.common.engine.fsdp import module_class_wrap_policy
    from projects.registry import MODELS
    projects.register_all_modules()
    cfg = _tiny_model_cfg()
    model = MODELS.build(cfg.model)
    names = cfg.strategy.model_wrapper.auto_wrap_policy.module_classes
    wrapped = [n for n, m in model.named_modules()
               if module_class_wrap_policy(m, False, 0, module_classes=names)]
    assert wrapped == ['transformer.blocks.0', 'transformer.blocks.1']
    assert module_class_wrap_policy(model, True, 0, module_classes=names)
    with pytest.raises(ValueError, match='module_classes'):
        module_class_wrap_policy(model, False, 0)
    # The root unit holds the frozen tokenizer next to trainable parameters: only valid with
    # use_orig_params=True.
    assert not any(p.requires_grad for p in model.tokenizer.parameters())


def test_flexible_runner_needs_a_launcher():
    from projects.common.engine.launch import ConfigFlagError, build_runner
    cfg = _tiny_model_cfg()
    cfg.launcher = 'none'
    with pytest.raises(ConfigFlagError, match='tools/dist_train.sh'):
        build_runner(cfg)
    cfg.runner_type = 'FaultTolerantRunner'
    with pytest.raises(ConfigFlagError, match="runner_type='FlexibleRunner'"):
        build_runner(cfg)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _run(args, timeout=600):
    return run_tool(args, timeout=timeout, env=tool_env('1', port=_free_port()))


@pytest.mark.slow
@pytest.mark.xdist_group('tokyo_full_grid')  # not beside the other full-grid runs (memory)
def test_fsdp_two_processes_gloo_train_then_test(tmp_path):
    if not osp.exists(DATA):
        pytest.fail(f'{DATA} is missing: run `bash tools/install.sh` first')
    import projects
    from projects.registry import MODELS
    projects.register_all_modules()
    # Stage-1 checkpoint with the narrow tokenizer (test_tokyo_configs_e2e trains one; here
    # its initial weights are enough: the point is sharding, loading and saving).
    model = MODELS.build(_tiny_model_cfg().model)
    stage1 = tmp_path / 'stage1.pth'
    torch.save({'state_dict': {f'tokenizer.{k}': v
                               for k, v in model.tokenizer.state_dict().items()}}, stage1)
    work = tmp_path / 'fsdp'
    out = _run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work),
                '--cfg-options', *OPTIONS, f'model.tokenizer_ckpt={stage1}'])
    assert 'Distributed training: True' in out, out[-3000:]
    assert "0-d parameters ['transformer.copy_logit'] are replicated" in out, out[-3000:]
    assert 'Iter(train) [1/1]' in out and 'loss_token' in out and 'grad_norm' in out, \
        out[-3000:]
    ckpt = work / 'iter_1.pth'
    assert ckpt.is_file(), out[-3000:]
    # One consolidated checkpoint (rank 0) with the plain model's keys and shapes.
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    model.load_state_dict(state, strict=True)
    frozen = {k: v for k, v in model.tokenizer.state_dict().items()}
    stage1_state = torch.load(stage1, weights_only=False)['state_dict']
    for key, value in frozen.items():
        assert torch.equal(value, stage1_state[f'tokenizer.{key}']), key  # stayed frozen
    test_opts = [o for o in OPTIONS if not o.startswith('train_cfg')]
    out = _run([sys.executable, 'tools/test.py', osp.join(ROOT, 'configs', 'worldmodel_tokyo.py'),
                str(ckpt), '--work-dir', str(tmp_path / 'test'), '--cfg-options', *test_opts,
                f'model.tokenizer_ckpt={stage1}'])
    assert 'IoU@6' in out and 'mIoU@mean' in out, out[-3000:]
