"""The KV-cache sampler against a plain full-sequence forward, on a tiny random lab model."""

from __future__ import annotations

import pytest
import torch

from entropyctl.config import TaskConfig
from entropyctl.lab.task import AdditionTask
from entropyctl.lab.tokenizer import build_char_tokenizer
from entropyctl.models.loading import encode_prompts
from entropyctl.models.scoring import ForwardBudget, completion_logits
from entropyctl.train.rescore import rescore
from entropyctl.train.rollout import completion_mask_from_ids, sample
from tests.helpers import tiny_lab_model

TOK = build_char_tokenizer()


def tiny_model(seed=0):
    return tiny_lab_model(layers=2, seed=seed)[1]


def test_tokenizer_round_trips_and_reloads(tmp_path):
    from transformers import AutoTokenizer

    text = "07+12 => answer 19"
    ids = TOK(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and TOK.decode(ids) == text
    TOK.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.eos_token_id == TOK.eos_token_id


def test_left_padding_and_bos():
    ids, mask = encode_prompts(TOK, ["1+2", "10+20"])
    assert ids.shape == (2, 6) and mask[0].tolist() == [0, 0, 1, 1, 1, 1]
    assert ids[0, 2].item() == TOK.bos_token_id and ids[1, 0].item() == TOK.bos_token_id


def test_completion_mask_stops_after_first_eos():
    eos = TOK.eos_token_id
    ids = torch.tensor([[5, eos, 0, 0], [5, 6, 7, 8]])
    mask, finished = completion_mask_from_ids(ids, eos)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert finished.tolist() == [True, False]


def test_greedy_with_kv_cache_matches_full_recompute():
    model = tiny_model()
    problems = AdditionTask(TaskConfig()).val_problems[:6]
    ro = sample(model, TOK, problems, 1, 8, 1.0, torch.Generator().manual_seed(0), greedy=True)
    # each greedy token must be the argmax of a plain forward over prompt + completion so far
    logits = completion_logits(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
                               torch.ones_like(ro.completion_mask), 1.0)
    valid = ro.completion_mask.bool()
    assert torch.equal(logits.argmax(-1)[valid], ro.completion_ids[valid])


def test_sampling_is_seeded_and_groups_are_contiguous():
    model = tiny_model()
    problems = AdditionTask(TaskConfig()).val_problems[:4]
    a = sample(model, TOK, problems, 3, 8, 1.0, torch.Generator().manual_seed(7))
    b = sample(model, TOK, problems, 3, 8, 1.0, torch.Generator().manual_seed(7))
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    assert a.group_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert [p.prompt for p in a.problems[:3]] == [problems[0].prompt] * 3


def test_rescore_gives_logp_of_sampled_tokens_and_entropy():
    model = tiny_model()
    problems = AdditionTask(TaskConfig()).val_problems[:4]
    ro = sample(model, TOK, problems, 2, 6, 1.0, torch.Generator().manual_seed(0))
    sc = rescore(model, model, ro, 1.0, ForwardBudget(None, 512))
    assert sc.old_logp.shape == ro.completion_ids.shape
    assert (sc.old_logp <= 0).all() and (sc.h >= 0).all()
    # The torch sampler's own scores stand in for the policy's pass; the base (same weights
    # here) is scored by a full forward pass: equal to float rounding on the sampled tokens.
    m = ro.completion_mask.bool()
    assert torch.allclose(sc.old_logp[m], sc.ref_logp[m], atol=1e-5)
    assert (sc.old_logp[~m] == 0).all() and (sc.h[~m] == 0).all()
    # entropy of a V-way distribution is at most ln V
    assert sc.h.max().item() <= torch.log(torch.tensor(float(len(TOK)))).item() + 1e-5


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_scores_equal_a_full_forward_pass(temperature):
    """rollout=torch skips the rescoring pass: the log-probs and entropies the KV-cache sampler
    computed at each step must be those a full forward pass over prompt + completion gives."""
    from entropyctl.models.scoring import completion_scores

    model = tiny_model()
    problems = AdditionTask(TaskConfig()).val_problems[:6]
    ro = sample(model, TOK, problems, 4, 8, temperature, torch.Generator().manual_seed(3))
    assert ro.rollout_h is not None  # the torch backend hands its scores over
    with torch.no_grad():
        logp, h = completion_scores(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
                                    ro.completion_mask, temperature, ForwardBudget(None, 512))
    m = ro.completion_mask.bool()
    assert m.sum() > 24 and (h[m] > 0.05).any()  # a real test: many tokens, not all certain
    assert torch.allclose(ro.rollout_logp[m], logp[m], atol=2e-5, rtol=0)
    assert torch.allclose(ro.rollout_h[m], h[m], atol=2e-5, rtol=0)
    sc = rescore(model, None, ro, temperature, ForwardBudget(None, 512))
    assert sc.old_logp is ro.rollout_logp and sc.ref_logp is None


def test_sampler_uses_the_cache_name_of_the_installed_transformers(capfd):
    """transformers 5.2x renamed `past_key_values` to `cache` and warns on the old name (on
    stderr, so every one-line error became three); the sampler must use whichever name the
    installed release takes, and say nothing."""
    import inspect
    import warnings

    from transformers.utils import logging as hf_logging

    from entropyctl.models.loading import cache_kwarg
    from entropyctl.train.backends.torch_backend import sample_torch

    model = tiny_model()
    expected = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    assert cache_kwarg(model) == expected
    hf_logging.set_verbosity_warning()
    try:
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample_torch(model, TOK, ["07+12", "3+4"], 6, 1.0, torch.Generator().manual_seed(0))
        err = capfd.readouterr().err
    finally:
        hf_logging.set_verbosity_error()
    said = [str(w.message) for w in caught if "deprecated" in str(w.message)]
    assert "deprecated" not in err and not said, (err, said)


def test_draw_is_torch_multinomial_bit_for_bit_on_cpu():
    """The sampler's exponential race, with its noise, gives torch.multinomial's draws on the
    CPU and leaves the generator where multinomial leaves it: the compaction below keeps the
    draws a run made before it existed. If a torch release changes how it draws exponentials,
    this fails and says so."""
    from entropyctl.train.backends.torch_backend import draw, exp_noise

    probs = torch.softmax(torch.randn(300, 99, generator=torch.Generator().manual_seed(1)) * 3, -1)
    ours_gen, torch_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    noise = exp_noise(300, 99, None, ours_gen)
    assert torch.equal(noise, torch.empty(300, 99).exponential_(generator=torch.Generator().manual_seed(7)))
    ours = draw(probs, noise)
    theirs = torch.multinomial(probs, 1, generator=torch_gen).squeeze(1)
    assert torch.equal(ours, theirs)
    assert torch.equal(torch.rand(3, generator=ours_gen), torch.rand(3, generator=torch_gen))
    assert len(set(ours.tolist())) > 10  # a real spread of draws, not one token everywhere
    rows = torch.tensor([3, 50, 299])
    assert torch.equal(exp_noise(300, 99, rows, torch.Generator().manual_seed(7)), noise[rows])


def test_finished_rows_leave_the_batch_without_changing_a_draw():
    """Rows that have finished are dropped from the decoding batch (and its KV cache); the ids,
    log-probs and entropies of every row's real tokens stay exactly what decoding the full
    batch to the end gives."""
    import entropyctl.train.backends.torch_backend as tb

    model = tiny_model(3)
    with torch.no_grad():  # make end-of-sequence likely, so rows finish at many different steps
        model.get_output_embeddings().weight[TOK.eos_token_id] *= 40.0
    prompts = [p.prompt for p in AdditionTask(TaskConfig()).val_problems[:16]]
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: sizes.append(kw["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        compact = tb.sample_torch(model, TOK, prompts, 12, 1.0, torch.Generator().manual_seed(0), n=8)
        saved, tb.MIN_COMPACT_ROWS = tb.MIN_COMPACT_ROWS, 10**9  # never compact
        try:
            sizes_compact, sizes[:] = list(sizes), []
            full = tb.sample_torch(model, TOK, prompts, 12, 1.0, torch.Generator().manual_seed(0), n=8)
        finally:
            tb.MIN_COMPACT_ROWS = saved
    finally:
        hook.remove()
    assert min(sizes_compact[1:]) < 128 and min(sizes[1:]) == 128  # it did compact, and the reference did not
    lengths = completion_mask_from_ids(full[2], TOK.eos_token_id)[0].sum(1)
    assert lengths.min() < lengths.max() - 3  # rows really finished at different steps
    assert torch.equal(compact[2], full[2])
    valid = completion_mask_from_ids(full[2], TOK.eos_token_id)[0].bool()
    assert torch.equal(compact[3][valid], full[3][valid]) and torch.equal(compact[4][valid], full[4][valid])


def test_a_generation_config_end_token_ends_the_completion(tmp_path):
    """Qwen2.5 Instruct's generation_config.json lists <|im_end|> and <|endoftext|>; the
    tokenizer names only the first. A model that writes the second has finished (as `generate`
    and vLLM stop there), not run to the token budget."""
    from entropyctl.models.loading import load_policy, stop_ids
    from tests.hf_fixtures import tiny_checkpoint

    model, tok = load_policy(tiny_checkpoint(tmp_path / "qwen", "qwen2"), dtype="float32",
                             device=torch.device("cpu"))
    other = tok.convert_tokens_to_ids("<|endoftext|>")
    assert other != tok.eos_token_id and other == 0
    with torch.no_grad():  # every logit equal: greedy picks token 0, <|endoftext|>
        model.get_output_embeddings().weight.zero_()
    problems = [type("P", (), {"prompt": "Tom has 3 apples."})()] * 2

    model.generation_config.eos_token_id = tok.eos_token_id  # the tokenizer's end only
    assert stop_ids(model, tok) == [tok.eos_token_id]
    ro = sample(model, tok, problems, 1, 6, 1.0, torch.Generator().manual_seed(0), greedy=True)
    assert ro.finished.tolist() == [False, False] and ro.completion_mask.sum().item() == 12

    model.generation_config.eos_token_id = [tok.eos_token_id, other]
    assert stop_ids(model, tok) == [tok.eos_token_id, other]
    ro = sample(model, tok, problems, 1, 6, 1.0, torch.Generator().manual_seed(0), greedy=True)
    assert ro.finished.tolist() == [True, True]
    assert ro.completion_mask.tolist() == [[1.0], [1.0]] and ro.texts == ["", ""]


def test_max_rows_decodes_in_whole_groups_with_the_same_greedy_completions():
    """rollout.max_rows bounds the rows (and KV cache) decoded at once; greedy decoding does
    not depend on it, and the chunks come back as one rollout in order."""
    from entropyctl.train.backends.torch_backend import TorchBackend

    model = tiny_model()
    problems = AdditionTask(TaskConfig()).val_problems[:24]
    # the last chunk's prompts are shorter: its rows are left-padded to the others' width
    prompts = [p.prompt for p in problems[:20]] + ["1+2=", "3+4=", "5+6=", "7+8="]
    whole = TorchBackend().generate(model, TOK, prompts, 4, 8, 1.0, torch.Generator().manual_seed(0), greedy=True)
    chunked = TorchBackend(max_rows=40).generate(model, TOK, prompts, 4, 8, 1.0,
                                                 torch.Generator().manual_seed(0), greedy=True)
    assert chunked.completion_ids.shape == whole.completion_ids.shape == (96, 8)
    assert torch.equal(chunked.prompt_ids, whole.prompt_ids) and torch.equal(chunked.prompt_mask, whole.prompt_mask)
    assert torch.equal(chunked.completion_ids, whole.completion_ids)
    torch.testing.assert_close(chunked.logp, whole.logp, atol=2e-5, rtol=0)
    torch.testing.assert_close(chunked.entropy, whole.entropy, atol=2e-5, rtol=0)


def test_chunks_join_with_prompts_left_and_completions_right_padded():
    from entropyctl.train.backends.torch_backend import _concat

    a = (torch.tensor([[5, 6]]), torch.tensor([[1, 1]]), torch.tensor([[7, 8, 9]]),
         torch.tensor([[-1.0, -2.0, -3.0]]), torch.tensor([[0.5, 0.25, 0.75]]))
    b = (torch.tensor([[4]]), torch.tensor([[1]]), torch.tensor([[3]]), torch.tensor([[-4.0]]), torch.tensor([[0.125]]))
    ids, mask, comp, logp, ent = _concat([a, b], pad=0)
    assert ids.tolist() == [[5, 6], [0, 4]] and mask.tolist() == [[1, 1], [0, 1]]
    assert comp.tolist() == [[7, 8, 9], [3, 0, 0]] and logp.tolist() == [[-1.0, -2.0, -3.0], [-4.0, 0.0, 0.0]]
    assert ent.tolist() == [[0.5, 0.25, 0.75], [0.125, 0.0, 0.0]]
