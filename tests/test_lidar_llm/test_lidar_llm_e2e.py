"""End-to-end runs of the LiDAR-Vision LLM tools as subprocesses (slow, a few seconds each).

The real-user config (``qwen2.5_0.5b_lora_lidar_vision.py``: bf16, gradient checkpointing,
gradient accumulation, AdamW with per-module learning rates) trains 2 iterations with the tiny
LLM and small VAT / ResNet / feature sizes swapped in by ``--cfg-options``, on the real
``nuscenes_frame`` keyframe (its 6 real camera images and a BEV map rasterised from its real
LiDAR sweep); ``tools/misc/lidar_llm_ask.py`` then answers from the saved checkpoint exactly
what validation wrote to the answers file (same prompt, same weights, greedy decoding).
"""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from tool_runner import ROOT, run_tool, tool_env

FRAME = 'ca9a282c9e77460f8360f564131a8af5'
TOKEN = FRAME + '@r0'
BEV_SHAPE = (8, 32, 32)


def _bev_from_sweep(lidar_path: str) -> np.ndarray:
    """(8, 32, 32) float16 point counts per 8 height bins over a 64 m x 64 m grid (log1p)."""
    pts = np.fromfile(lidar_path, dtype=np.float32).reshape(-1, 5)[:, :3]
    hist, _ = np.histogramdd(pts[:, [2, 1, 0]], bins=BEV_SHAPE,
                             range=[(-3, 3), (-32, 32), (-32, 32)])
    return np.log1p(hist).astype(np.float16)


def _real_user_options(qa, bev_dir):
    shape = '[' + ','.join(map(str, BEV_SHAPE)) + ']'
    opts = ['model.llm.model_id=None', 'model.llm.config=tiny', 'model.tokenizer.type=Qwen2BPE',
            f'model.vat_lidar.c_in={BEV_SHAPE[0]}', 'model.vat_lidar.d_model=32',
            'model.vat_lidar.n_queries=6', 'model.vat_lidar.n_layers=1',
            'model.vat_lidar.n_heads=4', 'model.camera_encoder.out_dim=32',
            'model.camera_encoder.backbone.depth=18',
            'model.camera_encoder.backbone.base_channels=4',
            'model.camera_encoder.backbone_channels=32', 'model.vat_vision.d_model=32',
            'model.vat_vision.n_queries=6', 'model.vat_vision.n_layers=1',
            'model.vat_vision.n_heads=4', 'model.vat_vision.max_tokens_per_cam=8',
            # an untrained tiny LM repeats the prompt's last token ('\n', stripped away):
            # no repeated token, so that the answers compared below are not empty
            'model.generation.max_new_tokens=3', 'model.generation.min_new_tokens=3',
            'model.generation.no_repeat_ngram_size=1',
            'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'val_evaluator.meteor=False', f'val_evaluator.prior_ann_file=[{qa}]']
    for split in ('train', 'val'):
        opts += [f'{split}_dataloader.dataset.data_root=data/',
                 f'{split}_dataloader.dataset.ann_file=[{qa}]',
                 f'{split}_dataloader.dataset.feature_dirs=[{bev_dir}]',
                 f'{split}_dataloader.dataset.pipeline.0.expected_shape={shape}',
                 f'{split}_dataloader.dataset.pipeline.1.img_size=[32,56]',
                 f'{split}_dataloader.num_workers=0']
    return opts + ['train_dataloader.persistent_workers=False',
                   'val_dataloader.dataset.max_samples=4']


@pytest.mark.slow
def test_real_user_config_trains_two_iterations_and_ask_repeats_validation(
        tmp_path, capsys, monkeypatch):
    index = json.load(open(osp.join(ROOT, 'data/lidar_llm/nuscenes_qa/nuscenes_qa_train.json')))
    frame = index['metainfo']['frames'][FRAME]
    rows = [r for r in index['data_list'] if r['sample_token'] == TOKEN][:8]
    assert len(rows) == 8 and len(frame['cams']) == 6
    qa = tmp_path / 'qa.json'
    qa.write_text(json.dumps(dict(metainfo=dict(frames={FRAME: frame}), data_list=rows)))
    bev_dir = tmp_path / 'bev'
    bev_dir.mkdir()
    np.save(bev_dir / f'{TOKEN}.npy', _bev_from_sweep(osp.join(ROOT, 'data',
                                                               frame['lidar_path'])))
    work = tmp_path / 'work'
    opts = _real_user_options(qa, bev_dir)
    config = 'configs/lidar_llm/qwen2.5_0.5b_lora_lidar_vision.py'
    env = tool_env('1', force_threads=True)
    out = run_tool(['python', 'tools/train.py', config, '--amp', '--work-dir', str(work),
                    '--cfg-options', *opts], timeout=300, env=env)
    assert 'CPUBf16OptimWrapper' in out
    assert 'Iter(train) [2/2]' in out and 'grad_norm' in out
    ckpt = work / 'iter_2.pth'
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    # LoRA, VATs, adapters, ResNet and delimiters were saved; the LLM's hidden size is 64
    assert any('lora_A' in k for k in state)
    assert state['delimiter_embed'].shape == (4, 64)
    assert {'vat_lidar', 'projector', 'camera_encoder', 'vat_vision', 'vision_adapter'} <= {
        k.split('.')[0] for k in state}
    answers = json.load(open(next(work.glob('*/qa_answers.json'))))
    assert [a['qa_id'] for a in answers] == [r['qa_id'] for r in rows[:4]]
    first = answers[0]
    assert first['model'] and first['answer_prior']
    # the ask tool in this process (its command line, one interpreter start less)
    spec = importlib.util.spec_from_file_location(
        'lidar_llm_ask', osp.join(ROOT, 'tools/misc/lidar_llm_ask.py'))
    ask_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ask_tool)
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)  # the config's relative paths (data/...)
    ask_tool.main([config, str(ckpt), '--sample-token', TOKEN, '--question', first['question'],
                   '--dataset', 'val', '--cfg-options', *opts])
    ask = capsys.readouterr().out
    assert f'Q: {first["question"]}\nA: {first["model"]}\n' in ask, (ask[-2000:], first)
