"""Typed data sample of the LiDAR-Vision LLM (like mmdet3d's ``Det3DDataSample``)."""
from typing import Optional

import numpy as np
from mmengine.structures import BaseDataElement

__all__ = ['LidarQADataSample']


class LidarQADataSample(BaseDataElement):
    """One driving question with its answer, sensor keys and (after ``predict``) answers.

    Metainfo fields (set by ``PackLidarQAInputs``): ``sample_token`` (str, nuScenes sample
    token, or ``<token>@r<deg>`` for a rotated view), ``template_type`` (str, question family,
    e.g. ``'count'``), ``qa_id`` (str, unique row id), ``scene`` (str).

    Data fields (typed properties below):
        question (str): The question text, without any prompt template.
        answer (str): The ground-truth answer text (``''`` when unknown, e.g. at inference).
        gt_box (np.ndarray): float32 (7,) BEV box ``x, y, z, l, w, h, yaw`` (m, rad, ego frame)
            of a grounding question, in the rotated frame of the sample.
        gt_count (int): Ground-truth count of a counting question.
        gt_bboxes_bev (np.ndarray): float32 (M, 7) annotated boxes ``x, y, z, l, w, h, yaw``
            of the whole sample (m, rad, ego frame, rotated like the points), when the index
            has them (grounded QA); read by auxiliary heads such as ``SectorCountHead``.
        gt_labels (np.ndarray): int64 (M,) class index of each box in the classes of
            ``LoadBEVObjects`` (-1: a class outside that list).
        gt_bev_semantic (np.ndarray): int64 (H, W) BEV class map of ``LoadBEVSemantics``
            (object class, ``K`` background, -1 no point); read by ``BEVSemanticHead``.
        pred_answer (str): The model's generated answer.
        pred_answer_text_only (str): The text-only twin's generated answer (same LLM, no
            sensor tokens), when the model trains one.
    """

    @property
    def question(self) -> str:
        return self._question

    @question.setter
    def question(self, value: str):
        self.set_field(str(value), '_question', dtype=str)

    @question.deleter
    def question(self):
        del self._question

    @property
    def answer(self) -> str:
        return self._answer

    @answer.setter
    def answer(self, value: str):
        self.set_field(str(value), '_answer', dtype=str)

    @answer.deleter
    def answer(self):
        del self._answer

    @property
    def pred_answer(self) -> str:
        return self._pred_answer

    @pred_answer.setter
    def pred_answer(self, value: str):
        self.set_field(str(value), '_pred_answer', dtype=str)

    @pred_answer.deleter
    def pred_answer(self):
        del self._pred_answer

    @property
    def pred_answer_text_only(self) -> str:
        return self._pred_answer_text_only

    @pred_answer_text_only.setter
    def pred_answer_text_only(self, value: str):
        self.set_field(str(value), '_pred_answer_text_only', dtype=str)

    @pred_answer_text_only.deleter
    def pred_answer_text_only(self):
        del self._pred_answer_text_only

    @property
    def gt_box(self) -> Optional[np.ndarray]:
        return self._gt_box

    @gt_box.setter
    def gt_box(self, value):
        arr = np.asarray(value, dtype=np.float32).reshape(-1)
        if arr.shape != (7,):
            raise ValueError(f'gt_box must have 7 values (x, y, z, l, w, h, yaw), '
                             f'got shape {arr.shape}')
        self.set_field(arr, '_gt_box', dtype=np.ndarray)

    @gt_box.deleter
    def gt_box(self):
        del self._gt_box

    @property
    def gt_count(self) -> int:
        return self._gt_count

    @gt_count.setter
    def gt_count(self, value):
        self.set_field(int(value), '_gt_count', dtype=int)

    @gt_count.deleter
    def gt_count(self):
        del self._gt_count

    @property
    def gt_bboxes_bev(self) -> np.ndarray:
        return self._gt_bboxes_bev

    @gt_bboxes_bev.setter
    def gt_bboxes_bev(self, value):
        arr = np.asarray(value, dtype=np.float32).reshape(-1, 7)
        self.set_field(arr, '_gt_bboxes_bev', dtype=np.ndarray)

    @gt_bboxes_bev.deleter
    def gt_bboxes_bev(self):
        del self._gt_bboxes_bev

    @property
    def gt_labels(self) -> np.ndarray:
        return self._gt_labels

    @gt_labels.setter
    def gt_labels(self, value):
        self.set_field(np.asarray(value, dtype=np.int64).reshape(-1), '_gt_labels',
                       dtype=np.ndarray)

    @gt_labels.deleter
    def gt_labels(self):
        del self._gt_labels

    @property
    def gt_bev_semantic(self) -> np.ndarray:
        return self._gt_bev_semantic

    @gt_bev_semantic.setter
    def gt_bev_semantic(self, value):
        arr = np.asarray(value, dtype=np.int64)
        if arr.ndim != 2:
            raise ValueError(f'gt_bev_semantic must be (H, W), got shape {arr.shape}')
        self.set_field(arr, '_gt_bev_semantic', dtype=np.ndarray)

    @gt_bev_semantic.deleter
    def gt_bev_semantic(self):
        del self._gt_bev_semantic
