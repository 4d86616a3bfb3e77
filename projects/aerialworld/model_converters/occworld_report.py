"""Counts and the human-readable report of an OccWorld conversion.

Part of :mod:`.occworld`: :func:`report_counts` sizes the report categories of
:func:`~.occworld.convert_occworld_state_dict`, :func:`format_report` prints every key that
is not a plain rename with its rule or reason.
"""
from typing import Dict, Mapping, Optional

import torch

#: Report categories of source keys.
SRC_CATEGORIES = ('mapped', 'adapted', 'dropped', 'unexplained')

#: Report categories of destination keys (besides being a ``mapped``/``adapted`` target).
DST_CATEGORIES = ('synthesized', 'from_scratch')


def report_counts(report: dict) -> Dict[str, int]:
    """Sizes of the report categories (source and destination keys).

    Args:
        report (dict): A report of :func:`convert_occworld_state_dict`.

    Returns:
        dict[str, int]: ``source_keys``, ``mapped``, ``adapted``, ``dropped``,
        ``unexplained``, ``destination_keys``, ``filled``, ``synthesized``,
        ``from_scratch``.
    """
    filled = ({v['dst'] for v in report['mapped'].values()} |
              {v['dst'] for v in report['adapted'].values()} | set(report['synthesized']))
    counts = {k: len(report[k]) for k in SRC_CATEGORIES}
    counts['source_keys'] = sum(counts[k] for k in SRC_CATEGORIES)
    counts['filled'] = len(filled)
    counts['synthesized'] = len(report['synthesized'])
    counts['from_scratch'] = len(report['from_scratch'])
    counts['destination_keys'] = counts['filled'] + counts['from_scratch']
    order = ('source_keys', 'mapped', 'adapted', 'dropped', 'unexplained',
             'destination_keys', 'filled', 'synthesized', 'from_scratch')
    return {k: counts[k] for k in order}


def format_report(report: dict, src_sd: Optional[Mapping[str, torch.Tensor]] = None) -> str:
    """Human-readable report: counts, then every non-mapped key with its rule / reason.

    Identical reasons are listed once with their keys under them.

    Args:
        report (dict): A report of :func:`convert_occworld_state_dict`.
        src_sd (Mapping[str, torch.Tensor], optional): The source, to add parameter counts
            per category.

    Returns:
        str: Multi-line text.
    """
    counts = report.get('counts') or report_counts(report)
    lines = ['OccWorld -> mmembodied conversion report',
             '  source keys: {source_keys} = mapped {mapped} + adapted {adapted} + dropped '
             '{dropped} + unexplained {unexplained}'.format(**counts),
             '  destination keys: {destination_keys} = filled {filled} (incl. synthesized '
             '{synthesized}) + from scratch {from_scratch}'.format(**counts)]
    if src_sd is not None:
        numel = {cat: sum(src_sd[k].numel() for k in report[cat] if k in src_sd)
                 for cat in SRC_CATEGORIES}
        lines.append('  source parameters: ' + ', '.join(f'{k} {v:,}' for k, v in
                                                         numel.items()))

    def grouped(title, items):
        """``items``: (line, text); lines sharing a text are listed under it once."""
        if not items:
            return
        lines.append(f'{title} ({len(items)}):')
        groups = {}
        for line, text in items:
            groups.setdefault(text, []).append(line)
        for text, group in groups.items():
            lines.append(f'  - {text}')
            lines.extend(f'      {line}' for line in group)

    grouped('ADAPTED source keys', [(f'{k} -> {v["dst"]}', v['rule'])
                                    for k, v in report['adapted'].items()])
    grouped('MAPPED source keys with a note (the others are plain renames)',
            [(f'{k} -> {v["dst"]}', v['rule']) for k, v in report['mapped'].items()
             if v['rule'] != 'rename'])
    grouped('DROPPED source keys', [(k, v) for k, v in report['dropped'].items()])
    grouped('UNEXPLAINED source keys', [(k, 'no conversion rule covers these keys')
                                        for k in report['unexplained']])
    grouped('SYNTHESIZED destination keys', [(k, v) for k, v in report['synthesized'].items()])
    grouped('FROM-SCRATCH destination keys', [(k, v)
                                              for k, v in report['from_scratch'].items()])
    if report.get('notes'):
        lines.append('Notes:')
        lines.extend(f'  - {n}' for n in report['notes'])
    return '\n'.join(lines)


__all__ = ['SRC_CATEGORIES', 'DST_CATEGORIES', 'report_counts', 'format_report']
