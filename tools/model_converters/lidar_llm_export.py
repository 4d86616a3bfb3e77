"""Export an MMEngine checkpoint of a LiDAR-Vision LLM to the seed layout, or import one.

Usage::

    # MMEngine checkpoint -> vat_lidar_<tag>.pt, projector_<tag>.pt, qwen2_lora_adapter_<tag>/ ...
    python tools/model_converters/lidar_llm_export.py export CONFIG CKPT OUT_DIR \
        [--tag latest] [--merge-lora] [--overwrite]
    # seed-layout folder -> MMEngine checkpoint (loadable by tools/test.py, --resume-free)
    python tools/model_converters/lidar_llm_export.py import CONFIG SEED_DIR OUT_CKPT \
        [--tag latest] [--overwrite]

See projects/lidar_llm/checkpoint_io.py for the layout.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from projects.common.utils.io import atomic_write  # noqa: E402


def build_model(config, cfg_options=None):
    import projects.lidar_llm.models  # noqa: F401
    from projects.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'projects'))
    return MODELS.build(cfg.model), cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    ex = sub.add_parser('export', help='MMEngine checkpoint -> seed layout')
    ex.add_argument('config')
    ex.add_argument('checkpoint')
    ex.add_argument('out_dir')
    ex.add_argument('--merge-lora', action='store_true',
                    help='also write merged_llm_<tag>/ (LoRA merged into the base weights)')
    im = sub.add_parser('import', help='seed layout -> MMEngine checkpoint')
    im.add_argument('config')
    im.add_argument('seed_dir')
    im.add_argument('out_ckpt')
    for p in (ex, im):
        p.add_argument('--tag', default='latest')
        p.add_argument('--overwrite', action='store_true')
        p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = ap.parse_args(argv)
    from projects.lidar_llm.checkpoint_io import export_seed_layout, import_seed_layout
    model, _ = build_model(args.config, args.cfg_options)
    if args.cmd == 'export':
        if not osp.isfile(args.checkpoint):
            sys.exit(f'{args.checkpoint}: checkpoint not found')
        ckpt = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
        state = ckpt.get('state_dict', ckpt)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if 'lora' in k or 'vat' in k]:
            sys.exit(f'{args.checkpoint} does not match {args.config}: missing '
                     f'{missing[:5]}, unexpected {unexpected[:5]}')
        try:
            paths = export_seed_layout(model, args.out_dir, args.tag, args.merge_lora,
                                       args.overwrite)
        except FileExistsError as e:
            sys.exit(str(e))
        for p in paths:
            print(f'[lidar_llm_export] wrote {p}')
    else:
        if osp.exists(args.out_ckpt) and not args.overwrite:
            sys.exit(f'{args.out_ckpt} exists; pass --overwrite to replace it')
        loaded = import_seed_layout(model, args.seed_dir, args.tag)
        for part, p in loaded.items():
            print(f'[lidar_llm_export] {part} <- {p}')
        ckpt = dict(meta=dict(source=args.seed_dir, tag=args.tag, config=args.config),
                    state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()})
        atomic_write(args.out_ckpt, lambda tmp: torch.save(ckpt, tmp))
        print(f'[lidar_llm_export] wrote {args.out_ckpt}')


if __name__ == '__main__':
    main()
