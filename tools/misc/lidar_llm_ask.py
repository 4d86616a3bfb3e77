"""Ask a trained LiDAR-Vision LLM a question about one sample.

Usage::

    python tools/misc/lidar_llm_ask.py CONFIG CKPT --sample-token TOKEN --question "..." \
        [--dataset test|val|train] [--cfg-options k=v ...]

The sample's sensors (points / BEV features / cameras) are loaded with the config's
``<dataset>_dataloader`` pipeline from the first row of that index with this
``sample_token``; the question replaces the row's question. Prints the model's answer (and
the text-only twin's when the model has one).
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    ap.add_argument('--sample-token', required=True)
    ap.add_argument('--question', required=True)
    ap.add_argument('--dataset', default='test', choices=['test', 'val', 'train'])
    ap.add_argument('--max-new-tokens', type=int, default=None)
    ap.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = ap.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    import projects.lidar_llm  # noqa: F401
    from projects.registry import DATASETS, MODELS
    ds_cfg = cfg[f'{args.dataset}_dataloader']['dataset'].copy()
    ds_cfg['lazy_init'] = True
    ds = DATASETS.build(ds_cfg)
    ds.full_init()
    idx = next((i for i in range(len(ds))
                if ds.get_data_info(i)['sample_token'] == args.sample_token), None)
    if idx is None:
        sys.exit(f'sample token {args.sample_token!r} is not in {ds_cfg["ann_file"]}')
    info = ds.get_data_info(idx)
    info['question'] = args.question
    info['answer'] = ''
    item = ds.pipeline(info)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False)
    model.eval()
    if args.max_new_tokens:
        model.generation['max_new_tokens'] = args.max_new_tokens
    data = model.data_preprocessor(pseudo_collate([item]), False)
    with torch.no_grad():
        out = model(data['inputs'], data['data_samples'], mode='predict')[0]
    print(f'Q: {args.question}')
    print(f'A: {out.pred_answer}')
    if 'pred_answer_text_only' in out:
        print(f'A (text-only twin): {out.pred_answer_text_only}')


if __name__ == '__main__':
    main()
