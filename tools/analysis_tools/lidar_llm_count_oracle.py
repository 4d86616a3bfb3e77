"""What the LiDAR branch of a trained LiDAR-LLM checkpoint knows about the count / existence
questions, without the LLM.

For every ``count`` / ``exist`` row of the grounded QA (``nuscenes_qa_from_boxes.py``
templates), reads the checkpoint's ``SectorCountHead`` (on the VAT queries) at the asked
(60° sector, range ring, class) cell: the rounded rate answers a count question, a rate
above 0.5 answers "yes" to an existence question. This is the answer an LLM would give if it
read the sensor tokens perfectly (the routing from the question's words to the view group
given for free), beside the per-question answer prior of the training rows (the text-only
model's ceiling on these questions). Exact match (%) per family and count MAE, on the
training and the held-out index.

Usage::

    OMP_NUM_THREADS=1 python tools/analysis_tools/lidar_llm_count_oracle.py \\
        configs/lidar_llm/nuscenes_qa_lidar_tiny.py work_dirs/.../iter_120.pth
"""
import argparse
import os.path as osp
import re
import sys
from collections import Counter, defaultdict

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

_VIEW_RE = re.compile(r'to the ([a-z-]+) of the ego car within (\d+) m')
_CLASS_RE = re.compile(r'(?:Is there an? |How many )([a-z ]+?)s? (?:to|are) ')


def parse_question(q: str):
    """``(view name, radius m, class word)`` of a count / exist question of the converter.

    Raises:
        ValueError: the question does not follow those templates.
    """
    v, c = _VIEW_RE.search(q), _CLASS_RE.search(q)
    if not v or not c:
        raise ValueError(f'not a count / exist question of nuscenes_qa_from_boxes: {q!r}')
    return v.group(1), float(v.group(2)), c.group(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('config')
    ap.add_argument('checkpoint')
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import projects  # noqa: F401
    from projects.lidar_llm.datasets.grounded_qa import VIEW_NAMES
    from projects.registry import DATASETS, MODELS
    init_default_scope('projects')
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
    model.eval()
    heads = [h for h in model.aux_heads
             if type(h).__name__ == 'SectorCountHead' and h.input_key == 'queries']
    if not heads:
        sys.exit(f'{args.config}: no SectorCountHead on the VAT queries in model.aux_heads')
    head = heads[0]
    classes = list(cfg.get('count_classes') or [])
    if len(classes) != head.num_classes:
        sys.exit(f'{args.config}: count_classes must list the {head.num_classes} classes of '
                 'the SectorCountHead')
    column = {c.replace('_', ' '): i for i, c in enumerate(classes)}
    column['object'] = head.num_classes  # the all-objects column

    def dataset(split):
        d = dict(cfg.train_dataloader.dataset)
        d['ann_file'] = f'lidar_llm/nuscenes_qa/nuscenes_qa_{split}.json'
        d['pipeline'] = [dict(type='LoadLiDARPoints', load_dim=5, use_dim=4),
                         dict(type='PackLidarQAInputs')]
        return DATASETS.build(d)

    train = dataset('train')
    prior = defaultdict(Counter)
    for i in range(len(train)):
        info = train.get_data_info(i)
        prior[info['question']][info['answer']] += 1
    for split, ds in (('train', train), ('val', dataset('val'))):
        rates, hit, hit_prior, n, err, err_prior = {}, Counter(), Counter(), Counter(), [], []
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            if info['template_type'] not in ('count', 'exist'):
                continue
            view, radius, cls = parse_question(info['question'])
            if cls not in column or radius not in head.ranges:
                continue
            tok = info['sample_token']
            if tok not in rates:
                data = model.data_preprocessor(pseudo_collate([ds[i]]), False)
                with torch.no_grad():
                    q = model.sensor_tokens(data['inputs'], with_queries=True)['lidar_queries']
                    rates[tok] = head(q)[0].exp()
            rate = float(rates[tok][VIEW_NAMES.index(view), head.ranges.index(radius),
                                    column[cls]])
            count = info['template_type'] == 'count'
            pred = str(int(round(rate))) if count else ('yes' if rate > 0.5 else 'no')
            p = prior[info['question']].most_common(1)[0][0] if prior[info['question']] else ''
            key = f'{info["template_type"]}/{cls}'
            n[key] += 1
            hit[key] += pred == info['answer']
            hit_prior[key] += p == info['answer']
            if count:
                err.append(abs(int(pred) - int(info['gt_count'])))
                err_prior.append(abs(int(p) - int(info['gt_count'])) if p.isdigit() else np.nan)
        total = sum(n.values())
        print(f'[{split}] {total} count + exist questions, {len(rates)} sweeps: EM '
              f'{100 * sum(hit.values()) / total:.2f} (SectorCountHead at the asked cell) vs '
              f'{100 * sum(hit_prior.values()) / total:.2f} (per-question prior); count MAE '
              f'{np.mean(err):.2f} vs {np.nanmean(err_prior):.2f}')
        for key in sorted(n):
            print(f'  {key:<22} {100 * hit[key] / n[key]:6.1f} vs {100 * hit_prior[key] / n[key]:6.1f}'
                  f'   ({n[key]} questions)')


if __name__ == '__main__':
    main()
