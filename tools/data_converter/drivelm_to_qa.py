"""DriveLM-nuScenes QA → MixedNuDataset index, split by scene.

Usage::

    python tools/data_converter/drivelm_to_qa.py data/drivelm/train_sample.json \
        --image-root data/drivelm/samples --data-root data \
        --out-dir data/lidar_llm/drivelm --val-scene f0f120e4d4b0441da90ec53b16ee169d [--overwrite]

Input: DriveLM's JSON (scene token → ``scene_description``, ``key_frames``: sample token →
``QA`` with ``perception`` / ``prediction`` / ``planning`` / ``behavior`` lists of
``{Q, A, ...}``, ``image_paths`` camera → path, ``key_object_infos``). Object tags such as
``<c1,CAM_BACK,1088.3,497.5>`` stay in the text (DriveLM's match metric reads them).
Images are looked up as ``<image-root>/<CAM>/<file name>`` (DriveLM's own relative paths
point into a full nuScenes tree); a missing image is an error naming the file.

Writes ``drivelm_{train,val}.json`` (rows: ``qa_id``, ``sample_token``, ``scene``,
``question``, ``answer``, ``template_type`` = the QA category, ``image_paths``) atomically;
the ``--val-scene`` scenes (default: the last scene of the file) are held out.
"""
import argparse
import json
import os.path as osp
import sys
from collections import Counter

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from projects.common.utils.io import save_json_atomic  # noqa: E402

CATEGORIES = ('perception', 'prediction', 'planning', 'behavior')
LICENSE = 'DriveLM language data and nuScenes images: CC BY-NC-SA 4.0'


def convert(src, image_root, data_root, val_scenes):
    with open(src, encoding='utf-8') as f:
        data = json.load(f)
    if not isinstance(data, dict) or not data:
        raise ValueError(f'{src}: expected a dict scene token -> scene')
    val_scenes = set(val_scenes or [list(data)[-1]])
    unknown = val_scenes - set(data)
    if unknown:
        raise KeyError(f'{src}: --val-scene {sorted(unknown)} not in the file')
    rows = {'train': [], 'val': []}
    for scene, sc in data.items():
        if 'key_frames' not in sc:
            raise KeyError(f'{src}: scene {scene} has no key_frames')
        split = 'val' if scene in val_scenes else 'train'
        for token, kf in sc['key_frames'].items():
            images = {}
            for cam, p in kf.get('image_paths', {}).items():
                path = osp.join(image_root, cam, osp.basename(p))
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{path}: {cam} image of DriveLM key frame {token} '
                                            f'(scene {scene}) not found')
                images[cam] = osp.relpath(path, data_root)
            for cat in CATEGORIES:
                for k, qa in enumerate(kf.get('QA', {}).get(cat, [])):
                    if 'Q' not in qa or 'A' not in qa:
                        raise KeyError(f'{src}: {scene}/{token}/{cat}[{k}] lacks Q or A')
                    rows[split].append(dict(
                        qa_id=f'{scene}_{token}_{cat}_{k}', sample_token=token, scene=scene,
                        question=qa['Q'], answer=qa['A'], template_type=cat,
                        image_paths=images))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('src', help="DriveLM JSON (e.g. data/drivelm/train_sample.json)")
    ap.add_argument('--image-root', default='data/drivelm/samples')
    ap.add_argument('--data-root', default='data')
    ap.add_argument('--out-dir', default='data/lidar_llm/drivelm')
    ap.add_argument('--val-scene', action='append', default=None,
                    help='scene token held out (repeatable; default: the last scene)')
    ap.add_argument('--overwrite', action='store_true')
    args = ap.parse_args(argv)
    outs = {s: osp.join(args.out_dir, f'drivelm_{s}.json') for s in ('train', 'val')}
    for p in outs.values():
        if osp.exists(p) and not args.overwrite:
            sys.exit(f'{p} exists; pass --overwrite to replace it')
    rows = convert(args.src, args.image_root, args.data_root, args.val_scene)
    for split, r in rows.items():
        meta = dict(dataset='drivelm_nuscenes', split=split, license=LICENSE,
                    source=args.src, scenes=sorted({x['scene'] for x in r}))
        save_json_atomic(outs[split], dict(metainfo=meta, data_list=r), separators=(',', ':'))
        print(f'[drivelm] {split}: {len(meta["scenes"])} scene(s), '
              f'{len({x["sample_token"] for x in r})} key frames, {len(r)} QA '
              f'{dict(Counter(x["template_type"] for x in r))} -> {outs[split]}', flush=True)


if __name__ == '__main__':
    main()
