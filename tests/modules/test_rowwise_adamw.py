"""RowwiseAdamW: a stacked [N, ...] parameter trains as N independent AdamW runs, each stepping on its own batches."""

from __future__ import annotations

import io
import random

import pytest
import torch

from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.modules.finetune import LoRAFinetuneModule
from lora_hyper.modules.rowwise_adamw import RowwiseAdamW

N, SHAPE = 4, (3, 5)


def _schedule(steps: int = 40, seed: int = 0) -> list[list[int]]:
    """Which rows get a gradient at each step (1-2 of N, like tasks in a batch)."""
    rng = random.Random(seed)
    return [rng.sample(range(N), rng.randint(1, 2)) for _ in range(steps)]


def _targets() -> torch.Tensor:
    return torch.randn(N, *SHAPE, generator=torch.Generator().manual_seed(1))


def _stacked_run(opt_cls, schedule, state_every: int | None = None, **kw) -> torch.Tensor:
    """Train a stacked parameter on a quadratic, touching only the scheduled rows at each step."""
    target = _targets()
    p = torch.nn.Parameter(torch.zeros(N, *SHAPE))
    opt = opt_cls([p], lr=0.05, **kw)
    for i, rows in enumerate(schedule):
        opt.zero_grad()
        ((p[rows] - target[rows]) ** 2).sum().backward()
        opt.step()
        if state_every and (i + 1) % state_every == 0:  # a resume: fresh optimizer from the state on disk
            buffer = io.BytesIO()
            torch.save(opt.state_dict(), buffer)
            buffer.seek(0)
            opt = opt_cls([p], lr=0.05, **kw)
            opt.load_state_dict(torch.load(buffer, weights_only=True))
    return p.detach()


def _independent_runs(schedule, **kw) -> torch.Tensor:
    """The reference: one AdamW per row, stepped only on the steps that row appears in."""
    target = _targets()
    params = [torch.nn.Parameter(torch.zeros(*SHAPE)) for _ in range(N)]
    opts = [torch.optim.AdamW([q], lr=0.05, **kw) for q in params]
    for rows in schedule:
        for r in rows:
            opts[r].zero_grad()
            ((params[r] - target[r]) ** 2).sum().backward()
            opts[r].step()
    return torch.stack([q.detach() for q in params])


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_stacked_rows_train_as_independent_adamw_runs(weight_decay):
    schedule = _schedule()
    got = _stacked_run(RowwiseAdamW, schedule, weight_decay=weight_decay)
    torch.testing.assert_close(got, _independent_runs(schedule, weight_decay=weight_decay))


def test_plain_adamw_on_stacked_rows_is_not_independent():
    """What RowwiseAdamW fixes: plain AdamW keeps stepping untouched rows (momentum), so the rows drift apart."""
    schedule = _schedule()
    plain = _stacked_run(torch.optim.AdamW, schedule, weight_decay=0.0)
    assert (plain - _independent_runs(schedule, weight_decay=0.0)).abs().max() > 1e-2


def test_state_dict_resume_is_exact():
    schedule = _schedule()
    straight = _stacked_run(RowwiseAdamW, schedule, weight_decay=0.01)
    resumed = _stacked_run(RowwiseAdamW, schedule, state_every=7, weight_decay=0.01)
    torch.testing.assert_close(resumed, straight, rtol=0, atol=0)


def test_untouched_rows_and_1d_params():
    p = torch.nn.Parameter(torch.ones(N, 2))
    bias = torch.nn.Parameter(torch.zeros(3))
    opt = RowwiseAdamW([p, bias], lr=0.1, weight_decay=0.5)
    (p[1].sum() + bias.sum()).backward()
    opt.step()
    assert torch.equal(p.detach()[[0, 2, 3]], torch.ones(3, 2))  # no update, not even weight decay
    assert not torch.equal(p.detach()[1], torch.ones(2))
    assert opt.state[p]["step"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert opt.state[bias]["step"].tolist() == [1.0]
    assert torch.allclose(bias.detach(), torch.full((3,), -0.1))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="betas"):
        RowwiseAdamW([torch.nn.Parameter(torch.zeros(2))], betas=(1.0, 0.999))


def test_plain_adamw_state_resumes_with_its_step_count():
    """A checkpoint written with plain AdamW (one step count) resumes: every row continues from that count."""
    p = torch.nn.Parameter(torch.zeros(N, 2))
    plain = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    plain.step()
    rowwise = RowwiseAdamW([p], lr=0.1)
    rowwise.load_state_dict(
        torch.optim.AdamW([p], lr=0.1).state_dict() | {"state": plain.state_dict()["state"]}
    )
    p.grad = torch.zeros_like(p)
    p.grad[2] = 1.0
    rowwise.step()
    assert rowwise.state[p]["step"].tolist() == [1.0, 1.0, 2.0, 1.0]


@pytest.mark.parametrize("mode, expected", [("per_task", RowwiseAdamW), ("multitask", torch.optim.AdamW)])
def test_finetune_module_builds_the_optimizer_by_mode(tiny_llama_dir, mode, expected):
    module = LoRAFinetuneModule(
        base_model=str(tiny_llama_dir), lora={"rank": 2}, mode=mode, tasks=["a", "b", "c"],
        runtime={"attn_implementation": "sdpa"},
    )  # fmt: skip
    module.configure_model()
    assert type(module.configure_optimizers()["optimizer"]) is expected


def test_per_task_step_moves_only_the_batch_tasks_adapters(tiny_llama_dir):
    """Task 1 is in the batch: its B moves at once, its A from the second step (A's gradient is 0 while B is 0)."""
    module = LoRAFinetuneModule(
        base_model=str(tiny_llama_dir), lora={"rank": 2}, tasks=["a", "b", "c"],
        runtime={"attn_implementation": "sdpa"}, optim={"lr": 1e-2, "weight_decay": 0.1},
    )  # fmt: skip
    module.configure_model()
    optimizer = module.configure_optimizers()["optimizer"]
    tok = module.tokenizer
    batch = collate_lm(
        [lm_example(tok, "hello there", "yes"), lm_example(tok, "a b c", "yes")], tok.pad_token_id
    )
    batch["task_index"] = torch.tensor([1, 1])
    start = {n: q.detach().clone() for n, q in module.named_parameters() if q.requires_grad}

    params = dict(module.named_parameters())

    def step_and_see_which_rows_moved() -> dict[str, list[bool]]:
        optimizer.zero_grad()
        module.lm_loss(module.adapters, batch, batch["task_index"]).mean().backward()
        optimizer.step()
        return {n: (params[n].detach() - start[n]).flatten(1).ne(0).any(1).tolist() for n in start}

    first, second = step_and_see_which_rows_moved(), step_and_see_which_rows_moved()
    for name in start:
        assert first[name] == ([False, True, False] if "lora_B" in name else [False, False, False]), name
        assert second[name] == [False, True, False], name


def test_every_task_adapter_starts_from_one_shared_a(tiny_llama_dir):
    """As independent runs from one seed: the oracle library's factors share a basis, so reconstruction can
    learn them (one random A per task made them unrelated noise across tasks)."""
    module = LoRAFinetuneModule(
        base_model=str(tiny_llama_dir), lora={"rank": 2}, tasks=["a", "b", "c"],
        runtime={"attn_implementation": "sdpa"},
    )  # fmt: skip
    module.configure_model()
    for name, a in module.lora_A.items():
        assert a.shape[0] == 3 and a.abs().sum() > 0, name
        assert torch.equal(a[0], a[1]) and torch.equal(a[0], a[2]), name
        assert not torch.equal(a[0, 0], a[0, 1]), name  # layers still differ
        a[1].data.add_(1.0)  # rows are separate storage, not views of one tensor
        assert not torch.equal(a[0], a[1]), name
