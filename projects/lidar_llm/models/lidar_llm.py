"""LiDAR-Vision LLM: sensor tokens from view-aware transformers, spliced between delimiter
tokens into the chat prompt of a LoRA-tuned causal LM (LiDAR-LLM, arXiv:2312.14074)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModel

from projects.registry import MODELS
from ..structures import LidarQADataSample
from .tokenizer import DEFAULT_DELIMITERS, build_tokenizer

__all__ = ['LidarLLM', 'build_causal_lm', 'IGNORE_INDEX', 'TINY_QWEN2']

IGNORE_INDEX = -100

#: ``model.llm.config='tiny'``: a randomly initialised Qwen2 with 2 layers of hidden size 64
#: (tests, CPU runs, and the real-user config with the LLM swapped by ``--cfg-options
#: model.llm.model_id=None model.llm.config=tiny model.tokenizer.type=Qwen2BPE``).
TINY_QWEN2 = dict(model_type='qwen2', hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=1024, tie_word_embeddings=True, rope_theta=10000.0)


def build_causal_lm(cfg: Dict, vocab_size: int):
    """A ``transformers`` causal LM from a local folder or from a config.

    Args:
        cfg (dict): ``dict(model_id=<local folder>, torch_dtype='bfloat16')`` (loaded with
            ``local_files_only=True``) or ``dict(config=dict(model_type='qwen2', ...))`` for
            a randomly initialised model (tests, CPU configs; ``config='tiny'`` is
            :data:`TINY_QWEN2`, with ``embedding_std`` 0.15 unless given);
            ``embedding_std`` re-draws the (tied) token embeddings of such a model with
            that standard deviation.
        vocab_size (int): Tokenizer size; the embeddings are resized to it (new rows for
            the delimiter tokens).

    Returns:
        transformers.PreTrainedModel: with ``use_cache=False`` (training).

    Raises:
        ValueError: neither ``model_id`` nor ``config`` given, or ``config`` is a string
            other than ``'tiny'``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = dict(cfg)
    dtype = cfg.get('torch_dtype')
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if cfg.get('model_id'):
        model = AutoModelForCausalLM.from_pretrained(cfg['model_id'], local_files_only=True,
                                                     dtype=dtype)
    elif cfg.get('config'):
        if isinstance(cfg['config'], str):
            if cfg['config'] != 'tiny':
                raise ValueError(f"model.llm.config must be a dict or 'tiny', got "
                                 f"{cfg['config']!r}")
            cfg['config'] = TINY_QWEN2
            cfg.setdefault('embedding_std', 0.15)
        hf_cfg = dict(cfg['config'])
        hf_cfg.setdefault('vocab_size', vocab_size)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**hf_cfg))
        if cfg.get('embedding_std'):
            # a frozen random tiny LM with the usual 0.02 init cannot produce confident
            # logits: the final RMSNorm bounds |h| by sqrt(d), so max logit ~ 0.02 * d.
            # Larger (tied) embeddings give LoRA room to reach confident answers.
            torch.nn.init.normal_(model.get_input_embeddings().weight,
                                  std=float(cfg['embedding_std']))
        if dtype is not None:
            model = model.to(dtype)
    else:
        raise ValueError('model.llm needs model_id (a local checkpoint folder) or config '
                         "(e.g. dict(model_type='qwen2', hidden_size=64, ...))")
    if model.get_input_embeddings().num_embeddings != vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    model.config.use_cache = False
    return model


@MODELS.register_module()
class LidarLLM(BaseModel):
    """LiDAR(-Vision) question answering with a LoRA-tuned causal LM.

    Wiring only: sensor encoders → VATs → projectors give sensor tokens ``(B, Q, D_llm)``;
    they are inserted between ``<lidar>`` … ``</lidar>`` (and ``<image>`` … ``</image>``) of
    the user turn of the LLM's own chat template; the loss is cross-entropy on the answer
    tokens (and the end-of-turn token) only: prompt, sensor and pad positions get
    ``IGNORE_INDEX`` (-100) and are never supervised. The prompt text is built by one method,
    :meth:`build_prompt`, at training and at inference.

    With ``text_only_baseline=True`` the model also trains a *text-only twin*: a copy of the
    same initial LLM with its own LoRA, fed the same batch with the same prompt minus the
    sensor part, optimised on the same steps; ``predict`` returns both answers, so every
    table shows the text-only model trained exactly the same way.

    Args:
        llm (dict): see :func:`build_causal_lm`.
        tokenizer (dict): see :func:`build_tokenizer`.
        lora (dict, optional): peft ``LoraConfig`` kwargs (``r``, ``lora_alpha``,
            ``lora_dropout``, ``target_modules``); ``None`` trains no LLM weight. The
            embeddings of the new delimiter tokens are trained as ``delimiter_embed``.
        lidar_encoder (dict, optional): :class:`PointsBEVEncoder` for raw points; without it
            ``inputs['bev']`` must hold BEV features ``(B, C, H, W)``.
        vat_lidar (dict, optional): :class:`VATLiDAR`; ``None`` = no LiDAR branch.
        projector (dict, optional): :class:`SensorTokenProjector` for LiDAR tokens
            (``in_dim``/``out_dim`` filled in when missing).
        camera_encoder (dict, optional): :class:`CameraEncoder`.
        vat_vision (dict, optional): :class:`VATVision`.
        vision_adapter (dict, optional): :class:`SensorTokenProjector` for camera tokens.
        losses (list[dict]): token classification losses on answer positions, summed.
            Defaults to ``[dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)]``.
        system_prompt (str, optional): system turn of the chat template.
        generation (dict): ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
            ``num_beams`` for ``generate`` (KV cache on). Defaults to greedy, 32 tokens.
        gradient_checkpointing (bool): enable the LLM's gradient checkpointing in training.
        text_only_baseline (bool): train the text-only twin (see above).
        sensors_after_question (bool): put the sensor slots after the question in the user
            turn instead of before it; the causal LLM then reads the sensor tokens with the
            question already in context (an instruction-aware reading, as InstructBLIP's
            Q-Former conditions its queries on the instruction, Dai et al. 2023). Defaults
            to False (LiDAR-LLM's order: sensors first).
        view_labels (Sequence[str], optional): text labels of the LiDAR view groups (e.g.
            ``VIEW_NAMES``: ``'front'``, ``'front-left'``, ...). Each group of
            ``n_queries / len(view_labels)`` LiDAR tokens is preceded by the embedded text
            ``"<label>:"`` inside the ``<lidar>`` slot (unsupervised, like every sensor
            position), so a question naming a view can find that view's tokens by matching
            words, as multi-camera LLMs tag each camera's tokens with its name. Readout
            tokens follow the last group. Defaults to None (no labels).
        question_readout (dict, optional): :class:`QuestionAwareReadout` (``d_model`` and
            ``text_dim`` filled in): readout tokens conditioned on the question, computed
            from the LiDAR VAT queries and appended (through the LiDAR projector) to the
            LiDAR tokens of every question, in training and in prediction alike.
        aux_heads (list[dict], optional): auxiliary training heads with a
            ``loss(x, data_samples)`` method; ``x`` is, by the head's ``input_key``, the
            LiDAR queries ``(B, Q, d_model)`` before the projector (``'queries'``, e.g.
            :class:`SectorCountHead`), the projected LiDAR tokens the LLM reads
            ``(B, Q, D)`` (``'tokens'``) or the BEV map the VAT reads ``(B, C, H, W)``
            (``'bev'``, e.g. :class:`BEVSemanticHead`, :class:`CenterHeatmapHead`), both
            computed once per distinct sample of the batch, or the question-aware readout
            tokens ``(B, n, d_model)`` of every row (``'readout'``, e.g.
            :class:`ReadoutAnswerHead`; needs ``question_readout``); their losses join the
            answer loss in training. Prediction never uses them.
    """

    def __init__(self, llm: Dict, tokenizer: Dict, lora: Optional[Dict] = None,
                 lidar_encoder: Optional[Dict] = None, vat_lidar: Optional[Dict] = None,
                 projector: Optional[Dict] = None, camera_encoder: Optional[Dict] = None,
                 vat_vision: Optional[Dict] = None, vision_adapter: Optional[Dict] = None,
                 losses: Optional[Sequence[Dict]] = None, system_prompt: Optional[str] = None,
                 generation: Optional[Dict] = None, gradient_checkpointing: bool = False,
                 text_only_baseline: bool = False, aux_heads: Optional[Sequence[Dict]] = None,
                 sensors_after_question: bool = False,
                 view_labels: Optional[Sequence[str]] = None,
                 question_readout: Optional[Dict] = None,
                 data_preprocessor: Optional[Dict] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.tokenizer = build_tokenizer(tokenizer, DEFAULT_DELIMITERS)
        self.delim_ids = {t: self.tokenizer.convert_tokens_to_ids(t) for t in DEFAULT_DELIMITERS}
        base = build_causal_lm(llm, len(self.tokenizer))
        for p in base.parameters():
            p.requires_grad_(False)
        hidden = base.config.hidden_size
        emb_rms = base.get_input_embeddings().weight.detach().float().pow(2).mean().sqrt()
        twin_base = copy.deepcopy(base) if text_only_baseline else None
        self.lora_cfg = dict(lora) if lora else None
        # trained embeddings of the delimiter tokens (initialised from the resized rows;
        # kept outside the LLM so that generation never rebuilds the embedding matrix)
        delim_rows = base.get_input_embeddings().weight.detach()[
            [self.delim_ids[t] for t in DEFAULT_DELIMITERS]].clone().float()
        self.delimiter_embed = nn.Parameter(delim_rows)
        self.llm = self._wrap_lora(base)
        self.llm_text_only = self._wrap_lora(twin_base) if twin_base is not None else None
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:
            for m in (self.llm, self.llm_text_only):
                if m is not None:
                    m.gradient_checkpointing_enable(
                        gradient_checkpointing_kwargs=dict(use_reentrant=False))
                    m.enable_input_require_grads() if hasattr(m, 'enable_input_require_grads') \
                        else None

        def _proj(cfg, in_dim):
            cfg = dict(cfg)
            cfg.setdefault('type', 'SensorTokenProjector')
            cfg.setdefault('in_dim', in_dim)
            cfg.setdefault('out_dim', hidden)
            if cfg.get('init_scale', None) is None:
                cfg['init_scale'] = float(emb_rms)
            return MODELS.build(cfg)

        self.lidar_encoder = MODELS.build(lidar_encoder) if lidar_encoder else None
        self.vat_lidar = MODELS.build(vat_lidar) if vat_lidar else None
        self.projector = _proj(projector or {}, self.vat_lidar.d_model) \
            if self.vat_lidar is not None else None
        self.camera_encoder = MODELS.build(camera_encoder) if camera_encoder else None
        self.vat_vision = MODELS.build(vat_vision) if vat_vision else None
        if (self.camera_encoder is None) != (self.vat_vision is None):
            raise ValueError('model.camera_encoder and model.vat_vision go together')
        self.vision_adapter = _proj(vision_adapter or {}, self.vat_vision.d_model) \
            if self.vat_vision is not None else None
        if self.vat_lidar is None and self.vat_vision is None:
            raise ValueError('LidarLLM needs vat_lidar and/or vat_vision (a sensor branch)')
        self.question_readout = None
        if question_readout:
            if self.vat_lidar is None:
                raise ValueError('model.question_readout reads the LiDAR queries: set '
                                 'model.vat_lidar')
            cfg = dict(question_readout)
            cfg.setdefault('type', 'QuestionAwareReadout')
            cfg.setdefault('d_model', self.vat_lidar.d_model)
            cfg.setdefault('text_dim', hidden)
            self.question_readout = MODELS.build(cfg)
        self.aux_heads = nn.ModuleList(MODELS.build(c) for c in (aux_heads or []))
        if len(self.aux_heads) and self.vat_lidar is None:
            raise ValueError('model.aux_heads act on the LiDAR queries: set model.vat_lidar')
        if self.question_readout is None and any(
                getattr(h, 'input_key', None) == 'readout' for h in self.aux_heads):
            raise ValueError("an aux head with input_key='readout' needs "
                             'model.question_readout')
        self.losses = nn.ModuleList(MODELS.build(c) for c in (
            losses or [dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)]))
        self.system_prompt = system_prompt
        self.sensors_after_question = bool(sensors_after_question)
        self.view_labels = tuple(view_labels) if view_labels else None
        if self.view_labels is not None:
            if self.vat_lidar is None or self.vat_lidar.n_queries % len(self.view_labels):
                raise ValueError(f'model.view_labels: {len(self.view_labels)} labels need '
                                 'model.vat_lidar with n_queries divisible by their number')
            self._view_label_ids = [
                self.tokenizer(f'{name}:', add_special_tokens=False).input_ids
                for name in self.view_labels]
        self.generation = dict(max_new_tokens=32, do_sample=False)
        self.generation.update(generation or {})

    def init_weights(self):
        """Initialise the sensor modules only: the LLM keeps its (pretrained or
        config-initialised) weights, which ``transformers``' own ``init_weights`` would
        re-initialise and re-tie."""
        for name in ('lidar_encoder', 'vat_lidar', 'projector', 'camera_encoder',
                     'vat_vision', 'vision_adapter', 'question_readout', 'aux_heads'):
            module = getattr(self, name)
            if module is not None and hasattr(module, 'init_weights'):
                module.init_weights()
        self._is_init = True

    # ------------------------------------------------------------------ building blocks
    def _wrap_lora(self, base):
        if self.lora_cfg is None:
            return base
        from peft import LoraConfig, get_peft_model
        cfg = dict(self.lora_cfg)
        cfg.setdefault('task_type', 'CAUSAL_LM')
        return get_peft_model(base, LoraConfig(**cfg))

    @property
    def use_lidar(self) -> bool:
        return self.vat_lidar is not None

    @property
    def use_vision(self) -> bool:
        return self.vat_vision is not None

    def build_prompt(self, question: str, with_sensors: bool = True) -> str:
        """The prompt text (chat template, generation prompt appended) for one question.

        Used unchanged by ``loss`` and ``predict``. Sensor tokens are inserted between the
        delimiter tokens after tokenisation.

        Args:
            question (str): the question.
            with_sensors (bool): include the ``<lidar></lidar>`` / ``<image></image>``
                slots (False for the text-only twin).

        Returns:
            str: the rendered prompt.
        """
        parts = []
        if with_sensors and self.use_lidar:
            parts.append('<lidar></lidar>')
        if with_sensors and self.use_vision:
            parts.append('<image></image>')
        parts = [question.strip()] + parts if self.sensors_after_question \
            else parts + [question.strip()]
        messages = [] if not self.system_prompt else [
            dict(role='system', content=self.system_prompt)]
        messages.append(dict(role='user', content='\n'.join(parts)))
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def answer_ids(self, answer: str) -> List[int]:
        """Token ids of an answer followed by the end-of-turn token (supervised)."""
        ids = self.tokenizer(answer.strip(), add_special_tokens=False).input_ids
        return ids + [self.tokenizer.eos_token_id]

    @staticmethod
    def _distinct_samples(inputs: Dict, data_samples) -> Tuple[List[int], Optional[torch.Tensor],
                                                               Dict]:
        """First row of every distinct ``sample_token`` of the batch.

        Returns:
            tuple: ``uniq`` (list of row indices), ``index`` (long (B,): position in ``uniq``
            of each row's sample, ``None`` when every row is distinct) and the ``inputs``
            restricted to ``uniq``.
        """
        keys = [s.metainfo.get('sample_token') for s in data_samples]
        if None in keys or len(set(keys)) == len(keys):
            return list(range(len(keys))), None, inputs
        first = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        uniq = list(first.values())
        index = torch.tensor([uniq.index(first[k]) for k in keys])
        sub = {name: [value[i] for i in uniq] if isinstance(value, list) else value[uniq]
               for name, value in inputs.items()}
        return uniq, index, sub

    def _distinct_sensor_tokens(self, inputs: Dict, data_samples):
        """:meth:`sensor_tokens` computed once per distinct ``sample_token`` of the batch.

        Returns:
            tuple: the tokens gathered per row (dict, as :meth:`sensor_tokens`), a dict with
            the LiDAR VAT queries ``queries`` (U, Q, d_model), the BEV map ``bev``
            (U, C, H, W) and the projected LiDAR tokens ``tokens`` (U, Q, D) of the distinct
            samples (``None`` without a LiDAR branch), and
            ``uniq`` / ``index`` of :meth:`_distinct_samples`.
        """
        uniq, index, sub = self._distinct_samples(inputs, data_samples)
        tokens = self.sensor_tokens(sub, with_queries=True)
        lidar_out = dict(queries=tokens.pop('lidar_queries', None),
                         bev=tokens.pop('lidar_bev', None), tokens=tokens.get('lidar'))
        if index is not None:
            tokens = {name: t[index.to(t.device)] for name, t in tokens.items()}
        return tokens, lidar_out, uniq, index

    def sensor_tokens_dedup(self, inputs: Dict, data_samples) -> Dict[str, torch.Tensor]:
        """:meth:`sensor_tokens` computed once per distinct ``sample_token`` of the batch
        (several questions about one sample share its sensor tokens) and gathered per row."""
        return self._distinct_sensor_tokens(inputs, data_samples)[0]

    def question_embeddings(self, questions: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The LLM's (frozen) input embeddings of the bare questions, right-padded.

        Returns:
            tuple: ``embeds`` (B, L, D) detached and ``mask`` bool (B, L) (True = token).
        """
        embed = self.llm.get_input_embeddings()
        device = embed.weight.device
        ids = [self.tokenizer(q.strip(), add_special_tokens=False).input_ids or
               [self.tokenizer.pad_token_id] for q in questions]
        length = max(len(i) for i in ids)
        padded = torch.full((len(ids), length), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(ids), length, dtype=torch.bool)
        for i, row in enumerate(ids):
            padded[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = True
        with torch.no_grad():
            embeds = embed(padded.to(device)).float()
        return embeds, mask.to(device)

    def _sensors_for_questions(self, inputs: Dict, data_samples, questions: Sequence[str]):
        """Sensor tokens of every row (computed once per distinct sample), with the
        question-aware readout tokens appended to the LiDAR tokens when configured.

        Returns:
            tuple: the tokens per row (dict), the LiDAR branch outputs of the distinct
            samples for ``aux_heads`` (dict: ``queries`` (U, Q, d_model), ``bev``
            (U, C, H, W); ``None`` values without a LiDAR branch), and the U row indices
            they belong to.
        """
        sensors, lidar_out, uniq, index = self._distinct_sensor_tokens(inputs, data_samples)
        if self.question_readout is not None:
            queries = lidar_out['queries']
            rows = queries if index is None else queries[index.to(queries.device)]
            embeds, mask = self.question_embeddings(questions)
            lidar_out['readout'] = self.question_readout(rows, embeds, mask)
            extra = self.projector(lidar_out['readout'])
            sensors['lidar'] = torch.cat([sensors['lidar'], extra.to(sensors['lidar'].dtype)],
                                         dim=1)
        return sensors, lidar_out, uniq

    def sensor_tokens(self, inputs: Dict, with_queries: bool = False
                      ) -> Dict[str, torch.Tensor]:
        """Sensor tokens in the LLM's embedding space.

        Args:
            inputs (dict): ``points`` (list of (N, C) tensors) or ``bev`` (B, C, H, W);
                ``imgs`` (B, N_cam, 3, H, W) when the vision branch exists.
            with_queries (bool): also return the LiDAR VAT output before the projector and
                the BEV map it read.

        Returns:
            dict: ``lidar`` (B, Q_l, D) and/or ``image`` (B, Q_v, D); with
            ``with_queries``, ``lidar_queries`` (B, Q_l, d_model) and ``lidar_bev``
            (B, C, H, W).

        Raises:
            KeyError: a needed input is missing.
        """
        out = {}
        if self.use_lidar:
            if self.lidar_encoder is not None:
                if 'points' not in inputs:
                    raise KeyError("inputs['points'] missing (model.lidar_encoder is set); "
                                   'add LoadLiDARPoints to the pipeline')
                bev = self.lidar_encoder(inputs['points'])
            else:
                if 'bev' not in inputs:
                    raise KeyError("inputs['bev'] missing; add LoadBEVFeature to the pipeline")
                bev = inputs['bev']
            queries = self.vat_lidar(bev.float())
            out['lidar'] = self.projector(queries)
            if with_queries:
                out['lidar_queries'] = queries
                out['lidar_bev'] = bev
        if self.use_vision:
            if 'imgs' not in inputs:
                raise KeyError("inputs['imgs'] missing; add LoadMultiViewImages to the pipeline")
            out['image'] = self.vision_adapter(self.vat_vision(self.camera_encoder(inputs['imgs'])))
        return out

    def _embed_batch(self, llm, prompts: Sequence[str], sensors: Dict[str, torch.Tensor],
                     answers: Optional[Sequence[str]] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded input embeddings, attention mask and labels of a batch.

        Returns:
            tuple: ``embeds`` (B, T, D), ``mask`` long (B, T), ``labels`` long (B, T) with
            ``IGNORE_INDEX`` on pad, prompt and sensor positions.
        """
        embed = llm.get_input_embeddings()
        device = embed.weight.device
        open_ids = {'lidar': self.delim_ids['<lidar>'], 'image': self.delim_ids['<image>']}
        # one embedding call for the whole batch (peft's trainable-token wrapper rebuilds
        # the merged embedding matrix on every call)
        id_lists, n_prompt = [], []
        for i, prompt in enumerate(prompts):
            ids = self.tokenizer(prompt, add_special_tokens=False).input_ids
            ans = self.answer_ids(answers[i]) if answers is not None else []
            id_lists.append(ids + ans)
            n_prompt.append(len(ids))
        pad_id = self.tokenizer.pad_token_id
        flat = torch.tensor(sum(id_lists, []) + [pad_id], dtype=torch.long, device=device)
        flat_emb = embed(flat.unsqueeze(0))[0]
        for k, t in enumerate(DEFAULT_DELIMITERS):
            hit = flat == self.delim_ids[t]
            if hit.any():
                flat_emb = torch.where(hit.unsqueeze(-1),
                                       self.delimiter_embed[k].to(flat_emb.dtype), flat_emb)
        pad = flat_emb[-1]
        label_embeds = None
        if self.view_labels is not None and 'lidar' in sensors:
            ids = torch.tensor(sum(self._view_label_ids, []), device=device)
            label_embeds = embed(ids.unsqueeze(0))[0].split(
                [len(x) for x in self._view_label_ids])
        seqs, labels, start = [], [], 0
        for i, ids in enumerate(id_lists):
            n_ids = n_prompt[i]
            tok = flat[start:start + len(ids)]
            e = flat_emb[start:start + len(ids)]
            start += len(ids)
            lab = torch.full((len(ids),), IGNORE_INDEX, dtype=torch.long, device=device)
            lab[n_ids:] = tok[n_ids:]
            # splice sensor tokens after their opening delimiter (last one first keeps indices)
            slots = []
            for key, tokens in sensors.items():
                pos = (tok[:n_ids] == open_ids[key]).nonzero().flatten()
                if len(pos) != 1:
                    raise ValueError(f'prompt must contain exactly one {key} delimiter, found '
                                     f'{len(pos)}: {prompts[i]!r}')
                t = tokens[i].to(e.dtype)
                if key == 'lidar' and label_embeds is not None:
                    t = self._label_views(label_embeds, t)
                slots.append((int(pos[0]) + 1, t))
            for p, t in sorted(slots, key=lambda s: -s[0]):
                e = torch.cat([e[:p], t, e[p:]])
                lab = torch.cat([lab[:p], lab.new_full((t.shape[0],), IGNORE_INDEX), lab[p:]])
            seqs.append(e)
            labels.append(lab)
        length = max(s.shape[0] for s in seqs)
        b, d = len(seqs), seqs[0].shape[-1]
        embeds = pad.expand(b, length, d).clone()
        mask = torch.zeros(b, length, dtype=torch.long, device=device)
        lab = torch.full((b, length), IGNORE_INDEX, dtype=torch.long, device=device)
        for i, (s, l) in enumerate(zip(seqs, labels)):
            n = s.shape[0]
            embeds[i, length - n:] = s  # left padding
            mask[i, length - n:] = 1
            lab[i, length - n:] = l
        return embeds, mask, lab

    def _label_views(self, label_embeds: Sequence[torch.Tensor],
                     tokens: torch.Tensor) -> torch.Tensor:
        """One sample's LiDAR tokens ``(Q [+ readout], D)`` with the embedded
        ``"<label>:"`` text (``label_embeds``, one ``(L_v, D)`` per view) before each view
        group of :attr:`view_labels`; readout tokens stay last."""
        n = self.vat_lidar.n_queries
        group = n // len(self.view_labels)
        parts = []
        for v, lab in enumerate(label_embeds):
            parts += [lab.to(tokens.dtype), tokens[v * group:(v + 1) * group]]
        parts.append(tokens[n:])
        return torch.cat(parts)

    def _lm_loss(self, llm, embeds, mask, labels) -> torch.Tensor:
        """Cross-entropy of the next-token logits at supervised positions only."""
        base = llm.get_base_model() if hasattr(llm, 'get_base_model') else llm
        position_ids = (mask.cumsum(-1) - 1).clamp_(min=0)
        hidden = base.model(inputs_embeds=embeds, attention_mask=mask,
                            position_ids=position_ids, use_cache=False).last_hidden_state
        target = labels[:, 1:]
        keep = target != IGNORE_INDEX
        if not keep.any():
            raise ValueError('batch has no supervised answer token (empty answers?)')
        logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
        return sum(loss_fn(logits, target[keep]) for loss_fn in self.losses)

    # ------------------------------------------------------------------ BaseModel API
    def forward(self, inputs: Dict, data_samples: Optional[List[LidarQADataSample]] = None,
                mode: str = 'tensor'):
        """Args:
            inputs (dict): from ``LidarLLMDataPreprocessor`` (``points`` / ``bev``, ``imgs``).
            data_samples (list[LidarQADataSample]): questions (and answers for ``loss``).
            mode (str): ``'loss'`` → dict of losses; ``'predict'`` → samples with
                ``pred_answer`` (and ``pred_answer_text_only``); ``'tensor'`` → dict of
                sensor tokens.
        """
        if mode == 'tensor':
            return self.sensor_tokens(inputs)
        if data_samples is None:
            raise ValueError(f'mode={mode!r} needs data_samples (questions)')
        questions = [s.question for s in data_samples]
        if mode == 'loss':
            answers = [s.answer for s in data_samples]
            if any(not a.strip() for a in answers):
                raise ValueError('a training sample has an empty answer: '
                                 f'{[s.metainfo.get("qa_id") for s in data_samples]}')
            sensors, lidar_out, distinct = self._sensors_for_questions(inputs, data_samples,
                                                                       questions)
            prompts = [self.build_prompt(q) for q in questions]
            embeds, mask, labels = self._embed_batch(self.llm, prompts, sensors, answers)
            losses = dict(loss_answer=self._lm_loss(self.llm, embeds, mask, labels))
            for head in self.aux_heads:
                key = getattr(head, 'input_key', 'queries')
                if key == 'readout':  # one row per question
                    out = head.loss(lidar_out['readout'], data_samples)
                else:  # once per distinct sample
                    out = head.loss(lidar_out[key], [data_samples[i] for i in distinct])
                clash = set(out) & set(losses)
                if clash:
                    raise ValueError(f'model.aux_heads: two heads log the same loss {clash}')
                losses.update(out)
            if self.llm_text_only is not None:
                prompts = [self.build_prompt(q, with_sensors=False) for q in questions]
                embeds, mask, labels = self._embed_batch(self.llm_text_only, prompts, {}, answers)
                losses['loss_text_only'] = self._lm_loss(self.llm_text_only, embeds, mask,
                                                         labels)
            return losses
        if mode == 'predict':
            with torch.no_grad():
                sensors = self._sensors_for_questions(inputs, data_samples, questions)[0]
                preds = self.generate(self.llm, [self.build_prompt(q) for q in questions],
                                      sensors)
                for s, p in zip(data_samples, preds):
                    s.pred_answer = p
                if self.llm_text_only is not None:
                    preds = self.generate(self.llm_text_only,
                                          [self.build_prompt(q, False) for q in questions], {})
                    for s, p in zip(data_samples, preds):
                        s.pred_answer_text_only = p
            return data_samples
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @torch.no_grad()
    def generate(self, llm, prompts: Sequence[str], sensors: Dict[str, torch.Tensor],
                 **overrides) -> List[str]:
        """Batched generation (left padding, KV cache) from prompts + sensor tokens.

        Returns:
            list[str]: decoded answers without special tokens, stripped.
        """
        embeds, mask, _ = self._embed_batch(llm, prompts, sensors)
        kwargs = dict(self.generation)
        kwargs.update(overrides)
        was_training = llm.training
        llm.eval()
        out = llm.generate(inputs_embeds=embeds, attention_mask=mask, use_cache=True,
                           eos_token_id=self.tokenizer.eos_token_id,
                           pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        llm.train(was_training)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def trainable_parameter_names(self) -> List[str]:
        """Names of the parameters with ``requires_grad`` (LoRA, delimiter embeddings, VATs,
        projectors, sensor encoders)."""
        return [n for n, p in self.named_parameters() if p.requires_grad]
