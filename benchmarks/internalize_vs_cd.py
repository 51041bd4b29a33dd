"""Update latency: Doc-to-LoRA ``internalize`` vs per-document context distillation vs in-context prompting.

    python benchmarks/internalize_vs_cd.py --model DIR           # DIR from benchmarks/niah.py --save-model
    python benchmarks/internalize_vs_cd.py --model DIR --quick   # 3 documents, fewer CD steps (2 CPU cores)

Same base (the model dir's), same 10 haystacks of 1-2K tokens. For each document, the wall time until the model
answers the needle question correctly:
(a) D2L: ``internalize`` + answer without the document;
(b) context distillation (the reference baseline): a fresh PEFT LoRA (r=8, down_proj) trained on the document's
    questions against the base model's own answers WITH the document in context, checked every few steps,
    until its answer is right (or ``--cd-max-steps``); the teacher's generation time is included;
(c) in-context: prompt processing + answer with the document in the prompt.
Reports per-document times and correctness, medians, and the ratio CD / D2L. Writes
benchmarks/results/internalize_vs_cd[_quick|_gpu].json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lora_hyper.api.doc_to_lora import DocToLoRA
from lora_hyper.base_model import load_base_model
from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.data_modules.doc_batch import context_prompt
from lora_hyper.data_modules.niah_protocol import (
    NIAH_QUESTION,
    QUESTION_VARIANTS,
    extract_number,
    niah_examples,
)
from lora_hyper.generation import generate_answers

from common import sync, write_result


def generate(model, tok, prompts: list[str], max_new_tokens: int = 16) -> list[str]:
    """Greedy chat answers of a plain or PEFT-wrapped model (room for a full sentence around the number)."""
    return generate_answers(model, tok, prompts, None, max_new_tokens)


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def context_distillation(base, tok, doc: str, answer: str, args, device) -> dict:
    """Train a fresh PEFT LoRA on the document's questions until the answer (without the document) is right."""
    from peft import LoraConfig, get_peft_model

    t0 = time.perf_counter()
    questions = [NIAH_QUESTION, *QUESTION_VARIANTS]
    with_doc = [context_prompt(doc, q) for q in questions]
    teacher = generate(base, tok, with_doc)  # the base model's own answers with the document in context
    rows = [lm_example(tok, q, a.strip()) for q, a in zip(questions, teacher)]
    batch = {k: v.to(device) for k, v in collate_lm(rows, tok.pad_token_id).items()}
    cfg = LoraConfig(
        r=8, lora_alpha=16, target_modules=["down_proj"], lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    model = get_peft_model(base, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.cd_lr)
    steps, correct, out = 0, False, ""
    try:
        while steps < args.cd_max_steps:
            model.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
            if steps % args.cd_check_every == 0:
                model.eval()
                out = generate(model, tok, [NIAH_QUESTION])[0]
                if extract_number(out) == answer:
                    correct = True
                    break
        sync(device)
    finally:
        model.unload()  # the base goes back to its plain Linear layers for the next document
    return {
        "seconds": time.perf_counter() - t0,
        "steps": steps,
        "correct": correct,
        "teacher": teacher[0],
        "output": out,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a DocToLoRA model directory (save_pretrained)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--docs", type=int, default=None)
    p.add_argument("--cd-max-steps", type=int, default=None)
    p.add_argument("--cd-check-every", type=int, default=5)
    p.add_argument("--cd-lr", type=float, default=1e-3)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    n_docs = args.docs or (3 if args.quick else 10)
    args.cd_max_steps = args.cd_max_steps or (30 if args.quick else 300)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    d2l = DocToLoRA.from_pretrained(args.model, device=device)
    tok = d2l.tokenizer
    lengths = [1024 + round(i * 1024 / max(1, n_docs - 1)) for i in range(n_docs)]
    docs = [niah_examples(tok, n, 1, seed=77, split="latency")[0] for n in lengths]
    for ex in docs[:1]:  # warm-up: kernels, caches
        d2l.generate([NIAH_QUESTION], d2l.internalize([ex.context]), max_new_tokens=16)

    rows = []
    for ex in docs:
        adapters, t_int = timed(lambda ex=ex: d2l.internalize([ex.context]), device)
        out, t_gen = timed(lambda a=adapters: d2l.generate([NIAH_QUESTION], a, max_new_tokens=16)[0], device)
        icl, t_icl = timed(
            lambda ex=ex: generate(d2l.base_model, tok, [context_prompt(ex.context, NIAH_QUESTION)])[0],
            device,
        )
        rows.append(
            {
                "n_tokens": ex.n_tokens,
                "answer": ex.answer,
                "d2l": {
                    "internalize_s": t_int,
                    "answer_s": t_gen,
                    "seconds": t_int + t_gen,
                    "output": out,
                    "correct": extract_number(out) == ex.answer,
                },
                "in_context": {"seconds": t_icl, "output": icl, "correct": extract_number(icl) == ex.answer},
            }
        )
        print(
            f"[latency] {ex.n_tokens} tok: D2L {t_int + t_gen:.3f}s ok={rows[-1]['d2l']['correct']} | "
            f"ICL {t_icl:.3f}s ok={rows[-1]['in_context']['correct']}",
            flush=True,
        )

    base, _ = load_base_model(d2l.base_model_name, device=device)  # a separate copy: PEFT wraps it in place
    for row, ex in zip(rows, docs):
        row["context_distillation"] = context_distillation(base, tok, ex.context, ex.answer, args, device)
        cd = row["context_distillation"]
        print(
            f"[latency] {ex.n_tokens} tok: CD {cd['seconds']:.2f}s steps={cd['steps']} ok={cd['correct']}",
            flush=True,
        )

    def med(key):
        return statistics.median(r[key]["seconds"] for r in rows)

    def acc(key):
        return sum(r[key]["correct"] for r in rows) / len(rows)

    summary = {
        "median_seconds": {
            "d2l": med("d2l"),
            "context_distillation": med("context_distillation"),
            "in_context": med("in_context"),
        },
        "median_internalize_s": statistics.median(r["d2l"]["internalize_s"] for r in rows),
        "accuracy": {
            "d2l": acc("d2l"),
            "context_distillation": acc("context_distillation"),
            "in_context": acc("in_context"),
        },
    }
    summary["cd_over_d2l"] = (
        summary["median_seconds"]["context_distillation"] / summary["median_seconds"]["d2l"]
    )
    summary["target_met"] = (
        summary["cd_over_d2l"] >= 100
        and summary["accuracy"]["d2l"] >= summary["accuracy"]["context_distillation"]
    )
    print(
        f"[latency] medians: {summary['median_seconds']} | CD/D2L = {summary['cd_over_d2l']:.1f}x | acc {summary['accuracy']}"
    )
    name = "internalize_vs_cd" + ("_quick" if args.quick else "") + ("_gpu" if device.type == "cuda" else "")
    config = {
        "model": args.model,
        "docs": n_docs,
        "lengths": lengths,
        "cd_max_steps": args.cd_max_steps,
        "cd_check_every": args.cd_check_every,
        "cd_lr": args.cd_lr,
        "cd_lora": "r=8, alpha=16, down_proj",
        "questions": [NIAH_QUESTION, *QUESTION_VARIANTS],
    }
    notes = (
        "CD time includes generating the teacher answers with the document in context; a CD run that hits "
        "cd_max_steps without a correct answer counts with its full time and correct=false."
    )
    print(
        f"wrote {write_result(name, {'config': config, 'summary': summary, 'rows': rows, 'notes': notes}, args.out_dir)}"
    )


if __name__ == "__main__":
    main()
