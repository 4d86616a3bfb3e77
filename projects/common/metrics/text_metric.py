"""Metrics of sensor-grounded question answering (LiDAR-Vision LLM, DriveLM, NuScenes-QA).

Every score is computed for three sources on the same held-out rows: the model, the
text-only twin (same LLM and training, no sensor tokens; ``pred_answer_text_only``) and the
*answer prior*, the most frequent training answer of the question's template (no learning).

* exact match (EM, %): normalised strings equal (lower case, inner whitespace collapsed,
  trailing punctuation dropped), overall and per ``template_type``;
* count MAE: mean ``|n̂ - n|`` over counting rows (first integer of the answer; an answer
  without an integer counts as 0);
* grounding: class accuracy (%) and BEV IoU (rotated boxes, ``mmcv.ops.box_iou_rotated``) of
  answers ``<class> [x, y, l, w, yaw°]``; an unparsable answer scores 0;
* language (corpus level, ``pycocoevalcap``): BLEU-1..4 (Papineni et al. 2002), METEOR
  (Banerjee & Lavie 2005, needs Java), ROUGE-L (Lin 2004), CIDEr (Vedantam et al. 2015);
* DriveLM match: F1 (%) of the object coordinates ``<c,CAM,x,y>`` in the answer against the
  ground truth (a predicted point matches the closest unmatched ground-truth point when the
  L1 distance is < 16 px), averaged over rows whose ground truth names objects; DriveLM's
  GPT-judged half of the match score and its GPT score need an online LLM and are not
  computed.
"""
import json
import os
import os.path as osp
import re
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from terminaltables import AsciiTable

from projects.registry import METRICS

__all__ = ['DrivingQAMetric', 'normalize_answer', 'question_template', 'match_f1',
           'first_int', 'answer_prior_table', 'parse_box_answer']

_TAG = re.compile(r'<c\d+,\s*CAM_[A-Z_]+,\s*-?\d+(?:\.\d+)?,\s*-?\d+(?:\.\d+)?>')


def normalize_answer(text: str) -> str:
    """Lower case, collapse whitespace, drop trailing ``.!?`` (exact-match key)."""
    return re.sub(r'\s+', ' ', str(text).strip().lower()).rstrip('.!? ').strip()


def question_template(question: str) -> str:
    """Template key of a question: object tags → ``<obj>``, numbers → ``<num>``."""
    q = _TAG.sub('<obj>', question)
    q = re.sub(r'-?\d+(?:\.\d+)?', '<num>', q)
    return normalize_answer(q)


def first_int(text: str) -> Optional[int]:
    m = re.search(r'-?\d+', str(text))
    return int(m.group()) if m else None


def match_f1(pred: str, gt: str, thr: float = 16.0) -> float:
    """DriveLM's coordinate match F1 (0..1) between the ``x.y`` number pairs of two answers.

    Each predicted point takes the closest remaining ground-truth point; it is a true
    positive when their L1 distance is below ``thr`` pixels.
    """
    def pts(s):
        nums = [float(x) for x in re.findall(r'\d+\.\d+', s)]
        nums = nums[:len(nums) // 2 * 2]
        return np.array(nums, dtype=np.float64).reshape(-1, 2)
    p, g = pts(pred), pts(gt)
    n_gt, tp, fp = len(g), 0, 0
    for q in p:
        if len(g) == 0:
            fp += 1
            continue
        d = np.abs(g - q).sum(1)
        k = int(np.argmin(d))
        if d[k] < thr:
            tp += 1
            g = np.delete(g, k, axis=0)
        else:
            fp += 1
    prec = tp / (tp + fp + 1e-8)
    rec = tp / (n_gt + 1e-8)
    return 2 * prec * rec / (prec + rec + 1e-8)


def answer_prior_table(rows: Sequence[Dict], target_field: str = 'answer') -> Dict:
    """Most frequent answer per question template, per ``template_type`` and overall."""
    by_tpl, by_type, overall = defaultdict(Counter), defaultdict(Counter), Counter()
    for r in rows:
        a = str(r[target_field])
        by_tpl[question_template(r['question'])][a] += 1
        by_type[r.get('template_type', 'qa')][a] += 1
        overall[a] += 1
    top = lambda c: c.most_common(1)[0][0]  # noqa: E731
    return dict(template={k: top(c) for k, c in by_tpl.items()},
                type={k: top(c) for k, c in by_type.items()},
                overall=top(overall) if overall else '')


def parse_box_answer(text: str) -> Optional[Dict]:
    """Parse a grounding answer ``'<class> [x, y, l, w, yaw_deg]'``.

    Returns:
        dict: ``name`` (str, spaces → underscores) and ``box`` float (5,) x, y, l, w (m),
        yaw (rad); ``None`` when the text has another form.
    """
    m = re.match(r'\s*([a-z ]+?)\s*\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,'
                 r'\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]', str(text).lower())
    if not m:
        return None
    try:
        vals = [float(v) for v in m.groups()[1:]]
    except ValueError:
        return None
    vals[4] = np.deg2rad(vals[4])
    return dict(name=m.group(1).strip().replace(' ', '_'), box=np.array(vals))


def _bev_iou(pred_box: np.ndarray, gt_box: np.ndarray) -> float:
    """Rotated BEV IoU of (x, y, l, w, yaw) boxes."""
    import torch
    from mmcv.ops import box_iou_rotated
    a = torch.tensor([pred_box], dtype=torch.float32)
    b = torch.tensor([gt_box], dtype=torch.float32)
    if (a[:, 2:4] <= 0).any():
        return 0.0
    return float(box_iou_rotated(a, b, aligned=True)[0])


@METRICS.register_module()
class DrivingQAMetric(BaseMetric):
    """Generation-based QA metric with the text-only and answer-prior baselines.

    Args:
        prior_ann_file (str | Sequence[str], optional): training index(es) (JSON with
            ``data_list`` or JSONL) for the answer prior; without it the prior column is
            not shown.
        target_field (str): answer key in the training rows. Defaults to ``'answer'``.
        language (bool): compute BLEU / ROUGE-L / CIDEr. Defaults to True.
        meteor (bool): also METEOR (starts a Java process). Defaults to True.
        out_file (str, optional): JSON file for every answer; default
            ``<log dir>/qa_answers_<prefix>.json`` next to the run's log.
        collect_device (str): see :class:`BaseMetric`.
        prefix (str, optional): metric name prefix. Defaults to ``'qa'``.
    """

    default_prefix = 'qa'

    def __init__(self, prior_ann_file=None, target_field: str = 'answer',
                 language: bool = True, meteor: bool = True, out_file: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.prior = None
        if prior_ann_file:
            files = [prior_ann_file] if isinstance(prior_ann_file, str) else prior_ann_file
            rows = []
            for f in files:
                rows += self._read(f)
            self.prior = answer_prior_table(rows, target_field)
        self.language, self.meteor, self.out_file = language, meteor, out_file

    @staticmethod
    def _read(path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'DrivingQAMetric.prior_ann_file {path} not found')
        if path.endswith('.jsonl'):
            with open(path, encoding='utf-8') as f:
                return [json.loads(x) for x in f if x.strip()]
        with open(path, encoding='utf-8') as f:
            d = json.load(f)
        return d['data_list'] if isinstance(d, dict) else d

    def prior_answer(self, question: str, template_type: str) -> str:
        """The answer-prior baseline's answer."""
        t = question_template(question)
        if t in self.prior['template']:
            return self.prior['template'][t]
        return self.prior['type'].get(template_type, self.prior['overall'])

    def process(self, data_batch, data_samples: Sequence) -> None:
        for s in data_samples:
            get = (lambda k, d=None: s.get(k, d)) if isinstance(s, dict) else \
                (lambda k, d=None: getattr(s, k, d))
            meta = s.get('metainfo', s) if isinstance(s, dict) else s.metainfo
            gt_box = get('gt_box')
            self.results.append(dict(
                qa_id=meta.get('qa_id'), sample_token=meta.get('sample_token'),
                template_type=meta.get('template_type', 'qa'), question=get('question'),
                answer=get('answer'), pred=get('pred_answer', ''),
                pred_text_only=get('pred_answer_text_only'),
                gt_box=None if gt_box is None else np.asarray(gt_box).tolist(),
                gt_count=get('gt_count')))

    # ---------------------------------------------------------------- scoring
    def _scores(self, rows: List[Dict], preds: List[str]) -> Dict[str, float]:
        out = {}
        em = [normalize_answer(p) == normalize_answer(r['answer']) for r, p in zip(rows, preds)]
        out['EM'] = 100.0 * float(np.mean(em))
        types = sorted({r['template_type'] for r in rows})
        for t in types:
            out[f'EM/{t}'] = 100.0 * float(np.mean([e for e, r in zip(em, rows)
                                                    if r['template_type'] == t]))
        ce = [e for e, r in zip(em, rows) if r['template_type'] in ('count', 'exist')]
        if ce:
            out['EM/count+exist'] = 100.0 * float(np.mean(ce))
        cnt = [(first_int(p), r['gt_count']) for r, p in zip(rows, preds)
               if r.get('gt_count') is not None]
        if cnt:
            out['count_MAE'] = float(np.mean([abs((p or 0) - g) for p, g in cnt]))
        grd = [(parse_box_answer(p), r) for r, p in zip(rows, preds) if r.get('gt_box')]
        if grd:
            cls_ok, ious = [], []
            for parsed, r in grd:
                gt = np.asarray(r['gt_box'], np.float64)
                gname = parse_box_answer(r['answer'])
                gname = gname['name'] if gname else ''
                if parsed is None:
                    cls_ok.append(0.0)
                    ious.append(0.0)
                    continue
                cls_ok.append(float(parsed['name'] == gname))
                ious.append(_bev_iou(parsed['box'], gt[[0, 1, 3, 4, 6]]))
            out['ground_cls_acc'] = 100.0 * float(np.mean(cls_ok))
            out['ground_BEV_IoU'] = 100.0 * float(np.mean(ious))
        tagged = [(p, r['answer']) for r, p in zip(rows, preds) if _TAG.search(r['answer'])]
        if tagged:
            out['match'] = 100.0 * float(np.mean([match_f1(p, g) for p, g in tagged]))
        if self.language:
            out.update(self._language(rows, preds))
        return out

    def _language(self, rows, preds) -> Dict[str, float]:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge

        def tok(s):
            s = re.sub(r'([.,!?;:()\[\]<>])', r' \1 ', str(s).lower())
            return ' '.join(s.split()) or 'none'
        gts = {i: [tok(r['answer'])] for i, r in enumerate(rows)}
        res = {i: [tok(p)] for i, p in enumerate(preds)}
        out = {}
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for k, b in enumerate(bleu, 1):
            out[f'BLEU-{k}'] = 100.0 * float(b)
        out['ROUGE-L'] = 100.0 * float(Rouge().compute_score(gts, res)[0])
        out['CIDEr'] = 100.0 * float(Cider().compute_score(gts, res)[0])
        if self.meteor:
            from pycocoevalcap.meteor.meteor import Meteor
            m = Meteor()
            try:
                out['METEOR'] = 100.0 * float(m.compute_score(gts, res)[0])
            finally:
                with m.lock:
                    m.meteor_p.stdin.close()
                    m.meteor_p.kill()
                    m.meteor_p.wait()
        return out

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        sources = {'model': [r['pred'] or '' for r in results]}
        if all(r.get('pred_text_only') is not None for r in results):
            sources['text-only'] = [r['pred_text_only'] or '' for r in results]
        if self.prior is not None:
            sources['answer prior'] = [self.prior_answer(r['question'], r['template_type'])
                                       for r in results]
        scores = {name: self._scores(results, preds) for name, preds in sources.items()}
        self._write_answers(results, sources)
        keys = list(scores['model'].keys())
        table = [['metric'] + list(scores)]
        for k in keys:
            table.append([k] + [f'{scores[s].get(k, float("nan")):.2f}' for s in scores])
        n_types = Counter(r['template_type'] for r in results)
        print_log(f'\nQA on {len(results)} held-out questions {dict(n_types)} '
                  '(EM, BLEU, METEOR, ROUGE-L, CIDEr, match, class acc., IoU in %; '
                  'count_MAE in objects; DriveLM GPT score not computed offline):\n'
                  + AsciiTable(table).table, logger='current')
        metrics = dict(scores['model'])
        for s in scores:
            if s == 'model':
                continue
            tag = s.replace(' ', '_').replace('-', '_')
            for k, v in scores[s].items():
                metrics[f'{tag}/{k}'] = v
        return metrics

    def _write_answers(self, results, sources) -> None:
        path = self.out_file
        if path is None:
            try:
                log_file = MMLogger.get_current_instance().log_file
            except Exception:
                log_file = None
            if not log_file:
                return
            path = osp.join(osp.dirname(log_file), f'{self.prefix}_answers.json')
        rows = []
        for i, r in enumerate(results):
            row = {k: r[k] for k in ('qa_id', 'sample_token', 'template_type', 'question',
                                     'answer')}
            for name, preds in sources.items():
                row[name.replace(' ', '_')] = preds[i]
            rows.append(row)
        from projects.common.utils.io import save_json_atomic
        save_json_atomic(path, rows, indent=1)
        print_log(f'{len(rows)} answers written to {path}', logger='current')
