"""``make demo``: the shipped Doc-to-LoRA internalizes a document and answers without it, and the shipped
Text-to-LoRA turns task descriptions into adapters (``--train``: train the quickstart recipe on CPU first, as a
12-minute pipeline demo)."""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
SHIPPED = "d2l-smollm2-niah"
SHIPPED_T2L = "t2l-smollm2-builtin"
# Descriptions written for the demo (in no corpus), each with inputs and the answers a correct adapter gives.
T2L_DEMO = [
    ("Put the words in alphabetical order.", ["pear apple mango", "zebra cat moon dog"], ["apple mango pear", "cat dog moon zebra"]),
    ("Write the text in capital letters.", ["good morning", "hello world"], ["GOOD MORNING", "HELLO WORLD"]),
    ("Which number is the largest? Reply with that number.", ["4 17 9 12", "55 3 71 20"], ["17", "71"]),
]  # fmt: skip
DEMO_BINS = [1024, 4096, 16384]  # 16K is twice SmolLM2's 8K native window


def newest(root: Path, pattern: str) -> Path:
    """The most recently written file under ``root`` matching ``pattern``."""
    found = sorted(root.rglob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no {pattern} under {root}")
    return found[-1]


def read_niah_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def run(
    out: Path, max_steps: int | None = None, model: str | Path | None = SHIPPED, train: bool = False
) -> dict[str, object]:
    """Every demo stage; ``model`` is a saved DocToLoRA directory or shipped name (``train``: train the quickstart
    recipe instead). Returns the summary numbers."""
    from lora_hyper.api.doc_to_lora import DocToLoRA
    from lora_hyper.assets import SAMPLE_DOCUMENT_ANSWER, SAMPLE_DOCUMENT_QUESTION, sample_document_path
    from lora_hyper.base_model import kv_cache_bytes
    from lora_hyper.pretrained import resolve_model_dir, shipped_models

    if not train and model == SHIPPED and SHIPPED not in shipped_models():
        print(
            f"[demo] no {SHIPPED} is shipped with this installation: training the quickstart instead",
            flush=True,
        )
        train = True
    if not train:
        model_dir = resolve_model_dir(model or SHIPPED)
        from lora_hyper.saved_model import detect_kind

        if detect_kind(model_dir) != "doc-to-lora":
            raise FileNotFoundError(
                f"{model_dir} is not a Doc-to-LoRA model directory: pass a folder written by save_pretrained, a "
                "shipped name, or --train to train one."
            )
        print(f"[demo] 1-2/4 using the trained model {model_dir} (no training)", flush=True)
        train_seconds, niah = 0.0, None
    else:
        model_dir, train_seconds = train_and_export(out, max_steps)
        niah = read_niah_csv(newest(out / "train", "niah_final.csv"))
    print(
        "[demo] 3/4 internalizing the sample document (the question is asked WITHOUT it in the prompt)",
        flush=True,
    )
    d2l = DocToLoRA.from_pretrained(model_dir)
    doc = sample_document_path().read_text(encoding="utf-8")
    t0 = time.perf_counter()
    lora = d2l.internalize([doc])
    internalize_seconds = time.perf_counter() - t0
    answer = d2l.generate([SAMPLE_DOCUMENT_QUESTION], lora, max_new_tokens=12)[0]
    no_doc = d2l.generate([SAMPLE_DOCUMENT_QUESTION], None, max_new_tokens=12)[0]

    adapter_dir = out / "adapter"
    print(f"[demo] 4/4 writing the PEFT adapter -> {adapter_dir}", flush=True)
    d2l.save_adapter(lora, 0, adapter_dir, overwrite=True)  # the demo folder is re-used run after run
    n_tokens = len(d2l.tokenizer(doc, add_special_tokens=False)["input_ids"])
    dtype_bytes = next(d2l.base_model.parameters()).element_size()
    kv = kv_cache_bytes(d2l.base_model.config, n_tokens, dtype_bytes)
    if niah is None:  # the trained model's accuracy, measured here (one bin past the native window)
        from lora_hyper.niah_eval import evaluate_niah

        bins = " / ".join(str(b) for b in DEMO_BINS)
        print(
            f"[demo] scoring NIAH at {bins} tokens (5 haystacks each, internalized, not in the prompt)",
            flush=True,
        )
        res = evaluate_niah(d2l, bins=DEMO_BINS, samples_per_bin=5, chunk_length=1024, batch_size=5)
        niah = [{k: str(b[k]) for k in ("bin", "accuracy", "n")} for b in res["bins"]]
    return {
        "train_seconds": train_seconds,
        "niah": niah,
        "question": SAMPLE_DOCUMENT_QUESTION,
        "expected": SAMPLE_DOCUMENT_ANSWER,
        "answer": answer,
        "answer_without_adapter": no_doc,
        "internalize_seconds": internalize_seconds,
        "doc_tokens": n_tokens,
        "adapter_bytes": lora.num_bytes(),
        "adapter_rank": lora.rank,
        "kv_bytes": kv,
        "model_dir": model_dir,
        "adapter_dir": adapter_dir,
    }


def text_to_lora_demo(model: str = SHIPPED_T2L) -> list[dict[str, object]]:
    """The shipped Text-to-LoRA: each demo description -> one adapter -> answers, beside the base model's."""
    from lora_hyper.api.text_to_lora import TextToLoRA

    print(f"[demo] Text-to-LoRA {model}: a task description in, an adapter out, answers with it", flush=True)
    t2l = TextToLoRA.from_pretrained(model)
    rows = []
    for description, inputs, expected in T2L_DEMO:
        t0 = time.perf_counter()
        lora = t2l.generate_lora(description)
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "description": description,
                "inputs": inputs,
                "expected": expected,
                "answers": t2l.generate(inputs, lora, max_new_tokens=16),
                "base": t2l.generate(inputs, None, max_new_tokens=16),
                "adapter_seconds": seconds,
            }
        )
    return rows


def train_and_export(out: Path, max_steps: int | None) -> tuple[Path, float]:
    """Train the quickstart recipe on CPU and export its last checkpoint; returns (model dir, seconds)."""
    from lora_hyper.cli import main as cli
    from lora_hyper.commands.export import export_checkpoint

    if not QUICKSTART.is_file():
        raise FileNotFoundError(f"{QUICKSTART} is missing: run the demo from a source checkout (make demo).")
    train_dir = out / "train"
    print(
        f"[demo] 1/4 training {QUICKSTART.relative_to(ROOT)} (CPU, training capped at 12 minutes) -> {train_dir}",
        flush=True,
    )
    argv = ["fit", "--config", str(QUICKSTART), f"--trainer.default_root_dir={train_dir}"]
    if max_steps is not None:
        argv.append(f"--trainer.max_steps={max_steps}")
    started = time.perf_counter()
    cli(argv)
    train_seconds = time.perf_counter() - started
    model_dir = out / "model"
    print(f"[demo] 2/4 exporting the checkpoint -> {model_dir}", flush=True)
    export_checkpoint(newest(train_dir, "*.ckpt"), model_dir, overwrite=True)
    return model_dir, train_seconds


def summary(r: dict) -> str:
    """The printed summary of a demo run."""
    from lora_hyper.commands.common import human_bytes

    lines = ["", "=" * 72, "Doc-to-LoRA demo summary", "=" * 72]
    if r["train_seconds"]:
        lines.append(f"training:        {r['train_seconds'] / 60:.1f} min on CPU")
    else:
        lines.append(f"training:        none (trained model {r['model_dir']}); --train trains one on CPU")
    lines.append("NIAH accuracy (exact match, haystack internalized, not in the prompt):")
    for row in r["niah"]:
        lines.append(f"  {row['bin']:>6} tokens: {float(row['accuracy']):.2f}  (n={row['n']})")
    lines.append(f"question:        {r['question']}")
    lines.append(
        f"answer:          {r['answer']!r}  (expected {r['expected']}; base model alone: {r['answer_without_adapter']!r})"
    )
    lines.append(f"internalize:     {r['internalize_seconds']:.2f} s for {r['doc_tokens']} document tokens")
    lines.append(
        f"memory:          adapter {human_bytes(r['adapter_bytes'])} (rank {r['adapter_rank']}) vs KV cache "
        f"{human_bytes(r['kv_bytes'])} ({r['kv_bytes'] / r['adapter_bytes']:.1f}x)"
    )
    lines.append(f"model dir:       {r['model_dir']}")
    lines.append(f"PEFT adapter:    {r['adapter_dir']}  (peft.PeftModel.from_pretrained(base, dir))")
    if r.get("t2l"):
        lines += ["=" * 72, f"Text-to-LoRA demo ({SHIPPED_T2L}; descriptions it never saw)", "=" * 72]
        for row in r["t2l"]:
            lines.append(f"task: {row['description']}  (adapter in {row['adapter_seconds']:.2f} s)")
            for x, a, e, b in zip(row["inputs"], row["answers"], row["expected"], row["base"]):
                mark = "ok" if " ".join(a.split()).rstrip(".") == e else "x "
                lines.append(f"  [{mark}] {x!r:24} -> {a!r}  (expected {e!r}; base model: {b!r})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lora_hyper.demo``."""
    parser = argparse.ArgumentParser(prog="python -m lora_hyper.demo", description=__doc__)
    parser.add_argument("--out", default="outputs/demo", help="output folder (train logs, model, adapter)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's training steps")
    parser.add_argument(
        "--model", default=SHIPPED, help=f"a trained DocToLoRA directory or shipped name (default {SHIPPED})"
    )
    parser.add_argument(
        "--train", action="store_true", help="train the quickstart recipe on CPU (~12 minutes) instead"
    )
    args = parser.parse_args(argv)
    result = run(Path(args.out), args.max_steps, args.model, args.train)
    from lora_hyper.pretrained import shipped_models

    if SHIPPED_T2L in shipped_models():
        result["t2l"] = text_to_lora_demo()
    print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
