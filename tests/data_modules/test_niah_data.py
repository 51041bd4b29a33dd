"""NIAH protocol and NIAHDataModule: lengths, depths, determinism, window multiples, the Doc-to-LoRA batch contract."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest
import torch

from lora_hyper.data_modules.collate import IGNORE_INDEX
from lora_hyper.data_modules.niah import (
    NIAH_QUESTION,
    NIAHDataModule,
    extract_number,
    make_niah_example,
    niah_examples,
    resolve_length,
)
from lora_hyper.data_modules.niah_protocol import DEPTH_BINS, needle_sentence


@pytest.fixture(scope="module")
def tok():
    from lora_hyper.testing import make_tiny_tokenizer

    return make_tiny_tokenizer()


def n_tok(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("n_tokens", [32, 77, 256, 1000, 4096])
def test_example_length_close_to_target_and_measured(tok, n_tokens):
    for depth in (0.0, 0.33, 0.5, 0.9, 1.0):
        ex = make_niah_example(tok, n_tokens, depth, random.Random(n_tokens))
        assert ex.n_tokens == n_tok(tok, ex.context)
        assert abs(ex.n_tokens - n_tokens) <= 2, (n_tokens, depth, ex.n_tokens)
        assert ex.question == NIAH_QUESTION
        assert len(ex.answer) == 4 and ex.answer.isdigit()
        assert ex.context.count(needle_sentence(int(ex.answer))) == 1
        assert ex.context.count("magic") == 1


def test_needle_sits_at_requested_depth(tok):
    for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
        ex = make_niah_example(tok, 2000, depth, random.Random(1))
        pos = ex.context.index("The special magic number")
        frac = pos / (len(ex.context) - len(needle_sentence(int(ex.answer))))
        assert abs(frac - depth) < 0.03, (depth, frac)


def test_short_target_gives_needle_alone_and_fixed_number(tok):
    ex = make_niah_example(tok, 3, 0.5, random.Random(0), number=4321)
    assert ex.context == "The special magic number is 4321." and ex.answer == "4321"
    with pytest.raises(ValueError, match="4 digits"):
        make_niah_example(tok, 64, 0.5, random.Random(0), number=123)
    with pytest.raises(ValueError, match="depth"):
        make_niah_example(tok, 64, 1.5, random.Random(0))


def test_examples_deterministic_and_depths_balanced(tok):
    a = niah_examples(tok, 128, 30, seed=3, split="val")
    b = niah_examples(tok, 128, 30, seed=3, split="val")
    c = niah_examples(tok, 128, 30, seed=4, split="val")
    assert a == b
    assert [e.answer for e in a] != [e.answer for e in c]
    counts = [0] * DEPTH_BINS
    for e in a:
        counts[min(int(e.depth * DEPTH_BINS), DEPTH_BINS - 1)] += 1
    assert counts == [3] * DEPTH_BINS


def test_resolve_length_forms_and_errors():
    assert resolve_length(256) == 256
    assert resolve_length("4K") == 4096 and resolve_length("0.5k") == 512
    assert resolve_length("2x", 8192) == 16384 and resolve_length("0.5x", 256) == 128
    with pytest.raises(ValueError, match="native window is unknown"):
        resolve_length("2x")
    with pytest.raises(ValueError, match="Bad NIAH length"):
        resolve_length("lots")
    with pytest.raises(ValueError, match="at least 1"):
        resolve_length(0)


def test_extract_number():
    assert extract_number("The number is 4821.") == "4821"
    assert extract_number("12345 then 0042") == "0042"
    assert extract_number("no digits, 12 or 123") is None


# ------------------------------------------------------------------ the DataModule


def make_dm(tiny_llama_dir, **kw) -> NIAHDataModule:
    defaults = {
        "val_samples_per_bin": 4,
        "test_samples_per_bin": 3,
        "val_bins": [64, "1x"],
        "test_bins": ["0.5x"],
    }
    dm = NIAHDataModule(str(tiny_llama_dir), **(defaults | kw))
    dm.setup("fit")
    return dm


def assert_left_padded(mask: torch.Tensor) -> None:
    assert bool((mask[:, -1] == 1).all()), "last position must be real in every row"
    assert bool((mask[:, 1:] >= mask[:, :-1]).all()), "padding must be on the left"


def test_native_window_multiples(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir)
    assert dm.native_window == 256  # the tiny Llama's max_position_embeddings
    assert dm.bin_lengths("val") == [64, 256] and dm.bin_lengths("test") == [128]
    items = dm.eval_items("val")
    assert len(items) == 8
    for item in items:
        assert abs(item.meta["n_tokens"] - item.meta["bin"]) <= 2


def test_train_batch_contract(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, batch_size=3, max_chunks=4, questions_per_doc=2, with_teacher=True)
    tok = dm.tokenizer
    batch = next(iter(dm.train_dataloader()))
    items = [dm.train_dataset()[i] for i in range(3)]
    assert batch["doc_ids"] == [it.doc_id for it in items]
    n_chunks = [it.n_chunks for it in items]
    assert batch["ctx_doc_index"].tolist() == [d for d, k in enumerate(n_chunks) for _ in range(k)]
    assert batch["qa_doc_index"].tolist() == [0, 0, 1, 1, 2, 2]
    for prefix in ("ctx_", "", "teacher_"):
        ids, mask = batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"]
        assert ids.shape == mask.shape and ids.dtype == torch.long
        assert_left_padded(mask)
    assert batch["input_ids"].shape[0] == batch["teacher_input_ids"].shape[0] == 6
    for r in range(6):
        item = items[r // 2]
        labels, t_labels = batch["labels"][r], batch["teacher_labels"][r]
        answer = labels[labels != IGNORE_INDEX].tolist()
        assert answer == t_labels[t_labels != IGNORE_INDEX].tolist()
        assert tok.decode(answer) == item.qas[r % 2][1] + tok.eos_token
        # the answer is the tail of the row; the prompt before it never carries labels
        assert batch["labels"][r, -len(answer) :].tolist() == answer
        student = tok.decode(batch["input_ids"][r][batch["attention_mask"][r].bool()])
        teacher = tok.decode(batch["teacher_input_ids"][r][batch["teacher_attention_mask"][r].bool()])
        assert item.context not in student and "magic number is" not in student
        assert item.context in teacher
    assert items[0].qas[0][0] == NIAH_QUESTION and items[0].qas[1][0] != NIAH_QUESTION
    # chunks: each doc's real chunk tokens hold its context in order
    ctx_text = tok.decode(batch["ctx_input_ids"][batch["ctx_doc_index"] == 0][0])
    assert "user" in ctx_text


def test_chunk_sampling_respects_bounds(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, max_chunks=4, min_chunk_tokens=25)
    ds = dm.train_dataset()
    ks = []
    for i in range(80):
        it = ds[i]
        assert 32 <= it.meta["n_tokens"] <= 258
        assert 1 <= it.n_chunks <= min(4, -(-it.meta["n_tokens"] // 25))  # the reference's ceil(len / 25)
        ks.append(it.n_chunks)
    assert set(ks) == {1, 2, 3, 4}
    assert ks.count(1) > ks.count(3)  # the reference distribution: P(K=1) = 8/12 with max_chunks 4
    single = make_dm(tiny_llama_dir).train_dataset()
    assert {single[i].n_chunks for i in range(20)} == {1}


def test_train_depths_balanced_and_lengths_spread(tiny_llama_dir):
    ds = make_dm(tiny_llama_dir).train_dataset()
    depths = [ds[i].meta["depth"] for i in range(50)]
    assert sorted(min(int(d * 10), 9) for d in depths) == sorted(list(range(10)) * 5)
    lengths = [ds[i].meta["n_tokens"] for i in range(50)]
    assert min(lengths) < 100 and max(lengths) > 190


def test_needle_only_curriculum(tiny_llama_dir):
    all_needle = make_dm(tiny_llama_dir, needle_only_prob=1.0).train_dataset()
    for i in range(10):
        it = all_needle[i]
        assert it.context == needle_sentence(int(it.qas[0][1])) and it.meta["needle_only"]
    none = make_dm(tiny_llama_dir, needle_only_prob=0.0).train_dataset()
    assert not any(none[i].meta["needle_only"] for i in range(30))
    half = make_dm(tiny_llama_dir, needle_only_prob=0.5).train_dataset()
    frac = sum(half[i].meta["needle_only"] for i in range(200)) / 200
    assert 0.35 < frac < 0.65


def test_deterministic_by_seed(tiny_llama_dir):
    b1 = next(iter(make_dm(tiny_llama_dir, seed=7).train_dataloader()))
    b2 = next(iter(make_dm(tiny_llama_dir, seed=7).train_dataloader()))
    b3 = next(iter(make_dm(tiny_llama_dir, seed=8).train_dataloader()))
    assert torch.equal(b1["ctx_input_ids"], b2["ctx_input_ids"]) and torch.equal(b1["labels"], b2["labels"])
    assert not torch.equal(b1["labels"], b3["labels"]) or not torch.equal(
        b1["ctx_input_ids"], b3["ctx_input_ids"]
    )
    v1 = make_dm(tiny_llama_dir, seed=7).eval_items("val")
    v2 = make_dm(tiny_llama_dir, seed=7).eval_items("val")
    assert [v.context for v in v1] == [v.context for v in v2]


def test_resume_continues_the_stream(tiny_llama_dir):
    fresh = make_dm(tiny_llama_dir, batch_size=4)
    batches = iter(fresh.train_dataloader())
    next(batches), next(batches)
    third = next(batches)
    resumed = make_dm(tiny_llama_dir, batch_size=4)
    resumed.load_state_dict({"samples_seen": 8})
    first = next(iter(resumed.train_dataloader()))
    assert first["doc_ids"] == third["doc_ids"] and torch.equal(
        first["ctx_input_ids"], third["ctx_input_ids"]
    )
    fresh.trainer = SimpleNamespace(global_step=5, accumulate_grad_batches=2, world_size=2)
    assert fresh.state_dict()["samples_seen"] == 5 * 4 * 2 * 2


def test_eval_loaders_use_fixed_chunks(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, eval_chunk_length=32, with_teacher=True, batch_size=4)
    batches = list(dm.val_dataloader())
    assert sum(len(b["doc_ids"]) for b in batches) == 8
    last = batches[-1]  # four 256-token haystacks -> 8 chunks of 32 tokens each (+ wrap)
    counts = torch.bincount(last["ctx_doc_index"]).tolist()
    assert all(c in (8, 9) for c in counts), counts
    assert last["teacher_input_ids"].shape[0] == 4  # validation keeps the distill rows
    test = list(dm.test_dataloader())
    assert len(test) == 1 and "teacher_input_ids" not in test[0]
    assert make_dm(tiny_llama_dir, val_bins=[]).val_dataloader() == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="train_lengths"):
        NIAHDataModule("x", train_lengths=(300, 100))
    with pytest.raises(ValueError, match="questions_per_doc"):
        NIAHDataModule("x", questions_per_doc=9)
    with pytest.raises(ValueError, match="needle_only_prob"):
        NIAHDataModule("x", needle_only_prob=2.0)
    with pytest.raises(RuntimeError, match="setup"):
        NIAHDataModule("x").train_dataset()


def test_smollm2_tokenizer_lengths_and_sample_document():
    from lora_hyper.assets import SAMPLE_DOCUMENT_ANSWER, SAMPLE_DOCUMENT_TOKENS, sample_document_path
    from lora_hyper.base_model import load_tokenizer

    smol = load_tokenizer("smollm2-135m-instruct")
    for n in (32, 256, 8192):
        ex = make_niah_example(smol, n, 0.5, random.Random(n))
        assert abs(ex.n_tokens - n) <= 2 and ex.n_tokens == n_tok(smol, ex.context)
    text = sample_document_path().read_text(encoding="utf-8")
    assert n_tok(smol, text.strip()) == SAMPLE_DOCUMENT_TOKENS
    assert extract_number(text[text.index("magic number") :]) == SAMPLE_DOCUMENT_ANSWER
    assert text.count("magic") == 1


def test_worker_processes_give_the_same_batches(tiny_llama_dir):
    ref = list(make_dm(tiny_llama_dir, train_samples=8, max_chunks=3).train_dataloader())
    par = list(make_dm(tiny_llama_dir, train_samples=8, max_chunks=3, num_workers=2).train_dataloader())
    assert len(ref) == len(par) == 2
    for a, b in zip(ref, par):
        assert a["doc_ids"] == b["doc_ids"] and torch.equal(a["ctx_input_ids"], b["ctx_input_ids"])


def test_prose_training_haystacks_use_sentences_the_evaluation_never_shows(tiny_llama_dir):
    from lora_hyper.data_modules.niah_prose import TRAIN_PROSE_SENTENCES
    from lora_hyper.data_modules.niah_protocol import FILLER, PROSE_SENTENCES

    train_first = {s.split()[1] for s in TRAIN_PROSE_SENTENCES}
    eval_first = {" ".join(s.split()[:4]) for s in PROSE_SENTENCES}
    prose = make_dm(tiny_llama_dir, prose_prob=1.0).train_dataset()
    for i in range(10):
        it = prose[i]
        assert it.meta["prose"] and needle_sentence(int(it.qas[0][1])) in it.context
        assert FILLER.split(".")[0] not in it.context
        assert not any(start in it.context for start in eval_first)
        assert train_first & set(it.context.split())
    default = make_dm(tiny_llama_dir).train_dataset()  # prose_prob 0: the same haystacks as before it existed
    zero = make_dm(tiny_llama_dir, prose_prob=0.0).train_dataset()
    assert [default[i].context for i in range(5)] == [zero[i].context for i in range(5)]
    assert not any(default[i].meta["prose"] for i in range(20))
    mixed = make_dm(tiny_llama_dir, prose_prob=0.3).train_dataset()
    frac = sum(mixed[i].meta["prose"] for i in range(200)) / 200
    assert 0.2 < frac < 0.4
    with pytest.raises(ValueError, match="prose_prob"):
        NIAHDataModule("x", prose_prob=1.5)


def test_contexts_use_the_encoder_tokenizer_when_the_encoder_is_another_model(tiny_llama_dir, tmp_path):
    from lora_hyper.encoders.models import load_encoder_tokenizer
    from lora_hyper.testing_vlm import save_tiny_vlm

    vlm = save_tiny_vlm(tmp_path / "vlm", "gemma3")
    same = make_dm(tiny_llama_dir, batch_size=2)
    other = make_dm(tiny_llama_dir, batch_size=2, encoder_model=str(vlm))
    enc_tok = load_encoder_tokenizer(str(vlm))
    a, b = next(iter(same.train_dataloader())), next(iter(other.train_dataloader()))
    assert torch.equal(a["input_ids"], b["input_ids"])  # questions and answers: the base model's tokens
    assert not torch.equal(a["ctx_input_ids"], b["ctx_input_ids"])  # contexts: the encoder's
    real = b["ctx_input_ids"][b["ctx_attention_mask"].bool()]
    assert int(real.max()) < len(enc_tok)
    text = enc_tok.decode(b["ctx_input_ids"][0][b["ctx_attention_mask"][0].bool()])
    assert "magic" in text or "number" in text


def test_repeated_digit_needles_are_weighted_as_asked(tiny_llama_dir):
    from lora_hyper.data_modules.niah_protocol import draw_needle_number, has_repeated_digit

    assert has_repeated_digit(7399) and has_repeated_digit("8111") and not has_repeated_digit(7294)
    rng = random.Random(0)
    uniform = [draw_needle_number(rng) for _ in range(4000)]
    assert all(1000 <= n <= 9999 for n in uniform)
    assert abs(sum(map(has_repeated_digit, uniform)) / 4000 - 0.271) < 0.03  # 1 - 0.9**3
    assert all(has_repeated_digit(draw_needle_number(rng, 1.0)) for _ in range(200))
    assert not any(has_repeated_digit(draw_needle_number(rng, 0.0)) for _ in range(200))
    with pytest.raises(ValueError, match="repeated_digit_prob"):
        draw_needle_number(rng, 1.5)

    weighted = make_dm(tiny_llama_dir, repeated_digit_prob=0.8).train_dataset()
    frac = sum(has_repeated_digit(weighted[i].qas[0][1]) for i in range(200)) / 200
    assert 0.7 < frac < 0.9
    item = weighted[3]
    assert needle_sentence(int(item.qas[0][1])) in item.context
    with pytest.raises(ValueError, match="repeated_digit_prob"):
        NIAHDataModule("x", repeated_digit_prob=-0.1)


def test_prose_haystacks_take_their_own_lengths_and_may_stay_one_long_chunk(tiny_llama_dir):
    default = make_dm(tiny_llama_dir, prose_prob=0.5, max_chunks=8).train_dataset()
    long = make_dm(
        tiny_llama_dir, prose_prob=0.5, max_chunks=8, prose_lengths=(600, 1000), max_chunk_tokens=1024
    ).train_dataset()
    items = [long[i] for i in range(60)]
    prose = [it for it in items if it.meta["prose"] and not it.meta["needle_only"]]
    filler = [it for it in items if not it.meta["prose"] and not it.meta["needle_only"]]
    assert prose and filler
    assert all(598 <= it.meta["n_tokens"] <= 1002 for it in prose)
    assert all(it.meta["n_tokens"] <= 258 for it in filler)  # train_lengths (32, 256) still rule filler
    assert any(it.n_chunks == 1 for it in prose)  # a whole ~1K-token chunk, as the evaluation cuts them
    # filler items draw exactly what they drew before (the extra draw is the prose items' alone)
    for i, it in enumerate(items):
        if not it.meta["prose"]:
            assert it.context == default[i].context and it.n_chunks == default[i].n_chunks
    capped = make_dm(tiny_llama_dir, prose_prob=0.5, max_chunks=8, prose_lengths=(600, 1000)).train_dataset()
    long_items = [it for it in (capped[i] for i in range(60)) if it.meta["n_tokens"] > 512]
    assert long_items and all(it.n_chunks >= 2 for it in long_items)  # the reference's 512-token cap
    with pytest.raises(ValueError, match="prose_lengths"):
        NIAHDataModule("x", prose_lengths=(300, 200))
    with pytest.raises(ValueError, match="max_chunk_tokens"):
        NIAHDataModule("x", max_chunk_tokens=0)


def test_a_fraction_of_filler_haystacks_take_the_long_lengths(tiny_llama_dir):
    kw = {"prose_prob": 0.2, "max_chunks": 8, "max_chunk_tokens": 1024}
    default = make_dm(tiny_llama_dir, **kw).train_dataset()
    mixed = make_dm(tiny_llama_dir, long_prob=0.5, long_lengths=(600, 1000), **kw).train_dataset()
    items = [mixed[i] for i in range(80)]
    full = [it for it in items if not it.meta["needle_only"]]
    filler = [it for it in full if not it.meta["prose"]]
    long = [it for it in filler if it.meta["n_tokens"] > 258]
    assert all(598 <= it.meta["n_tokens"] <= 1002 for it in long)
    assert 0.25 < len(long) / len(filler) < 0.75  # about long_prob of the filler haystacks
    assert any(it.n_chunks == 1 for it in long)  # a whole ~1K-token chunk, as the evaluation cuts them
    assert all(it.meta["n_tokens"] <= 258 for it in full if it.meta["prose"])  # prose keeps its lengths
    for i, it in enumerate(items):  # prose items draw exactly what they drew before (no extra draw)
        if it.meta["prose"]:
            assert it.context == default[i].context and it.n_chunks == default[i].n_chunks
    with pytest.raises(ValueError, match="long_lengths"):
        NIAHDataModule("x", long_prob=0.3)
    with pytest.raises(ValueError, match="long_prob"):
        NIAHDataModule("x", long_prob=1.5, long_lengths=(512, 1024))
    with pytest.raises(ValueError, match="long_lengths"):
        NIAHDataModule("x", long_prob=0.3, long_lengths=(1024, 512))
    with pytest.raises(ValueError, match="long_start_step"):
        NIAHDataModule("x", long_prob=0.3, long_lengths=(512, 1024), long_start_step=-1)


def test_long_haystacks_start_at_the_given_step(tiny_llama_dir):
    kw = {"prose_prob": 0.2, "max_chunks": 8, "max_chunk_tokens": 1024, "batch_size": 2}
    default = make_dm(tiny_llama_dir, **kw).train_dataset()
    late = make_dm(tiny_llama_dir, long_prob=0.5, long_lengths=(600, 1000), long_start_step=20, **kw)
    items = [late.train_dataset()[i] for i in range(80)]
    before, after = items[:40], items[40:]  # step 20 of batches of 2 starts at sample 40
    assert all(a.context == b.context for a, b in zip(before, (default[i] for i in range(40))))
    assert any(it.meta["n_tokens"] > 500 for it in after if not it.meta["needle_only"])


def test_phases_change_the_mix_from_their_start_step(tiny_llama_dir):
    kw = {"prose_prob": 0.2, "max_chunks": 8, "batch_size": 2}
    default = make_dm(tiny_llama_dir, **kw).train_dataset()
    phases = [
        {"start_step": 10, "long_prob": 0.5, "long_lengths": [600, 1000], "max_chunk_tokens": 1024},
        {"start_step": 30, "prose_prob": 1.0, "prose_lengths": [300, 400], "repeated_digit_prob": 1.0},
    ]
    phased = make_dm(tiny_llama_dir, phases=phases, **kw).train_dataset()
    items = [phased[i] for i in range(100)]
    # before the first phase (step 10 of batches of 2 = sample 20): the same stream as without phases
    assert all(
        a.context == default[i].context and a.n_chunks == default[i].n_chunks
        for i, a in enumerate(items[:20])
    )
    first = [it for it in items[20:60] if not it.meta["needle_only"] and not it.meta["prose"]]
    assert any(it.meta["n_tokens"] > 500 for it in first)  # long filler haystacks, some kept in one chunk
    assert any(it.meta["n_tokens"] > 500 and it.n_chunks == 1 for it in first)
    last = items[60:]  # the second phase keeps the first's fields and adds its own
    assert all(it.meta["prose"] for it in last)
    assert all(298 <= it.meta["n_tokens"] <= 402 for it in last if not it.meta["needle_only"])
    assert all(any(a == b for a, b in itertools.pairwise(it.qas[0][1])) for it in last)  # repeated digits
    assert phased.settings(59)["long_prob"] == 0.5 and phased.settings(60)["prose_prob"] == 1.0
    assert phased.settings(0)["long_prob"] == 0.0


@pytest.mark.parametrize(
    ("phases", "match"),
    [
        ([{"long_prob": 0.5}], "start_step"),
        ([{"start_step": 0, "prose_prob": 0.5}], r"phases\[0\]\.start_step"),
        ([{"start_step": 5}, {"start_step": 5}], r"phases\[1\]\.start_step must be an integer above 5"),
        ([{"start_step": 5, "needle_only_prob": 0.5}], "needle_only_prob is not a phase field"),
        ([{"start_step": 5, "prose_prob": 2}], r"phases\[0\]\.prose_prob must be a number in \[0, 1\]"),
        ([{"start_step": 5, "long_prob": 0.5}], r"phases\[0\]\.long_prob > 0 needs long_lengths"),
        ([{"start_step": 5, "prose_lengths": [9, 3]}], r"phases\[0\]\.prose_lengths"),
        ([{"start_step": 5, "max_chunks": 0}], r"phases\[0\]\.max_chunks must be a whole number >= 1"),
        ([{"start_step": 5, "max_chunks": 2.5}], r"phases\[0\]\.max_chunks must be a whole number"),
        ([{"start_step": 5, "prose_prob": "0.5"}], r"phases\[0\]\.prose_prob must be a number in \[0, 1\]"),
        ([{"start_step": 5, "prose_prob": True}], r"phases\[0\]\.prose_prob"),
        ([{"start_step": True, "prose_prob": 0.5}], r"phases\[0\]\.start_step must be an integer above 0"),
        ([{"start_step": 5, "train_lengths": 256}], r"phases\[0\]\.train_lengths must be \[min, max\]"),
        ([{"start_step": 5, "train_lengths": "12"}], r"phases\[0\]\.train_lengths"),
        ([{"start_step": 5, "long_lengths": [32.5, 64]}], r"phases\[0\]\.long_lengths"),
        ({"start_step": 5}, "phases must be a list of mappings"),
    ],
)
def test_bad_phases_fail_with_one_clear_line(phases, match):
    with pytest.raises(ValueError, match=match):
        NIAHDataModule("x", phases=phases)


def test_phase_steps_count_optimizer_steps_under_accumulation_and_ranks(tiny_llama_dir):
    dm = make_dm(tiny_llama_dir, batch_size=2, phases=[{"start_step": 5, "prose_prob": 1.0}])
    assert dm.train_dataset().phases[0][0] == 10  # no trainer: batch_size samples per step
    dm.trainer = SimpleNamespace(accumulate_grad_batches=3, world_size=2, global_step=0)
    assert dm.samples_per_step() == 12
    assert dm.train_dataset().phases[0][0] == 60  # step 5 of 12 samples each
