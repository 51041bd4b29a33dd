"""Internalize cost as ratios in one process: against one encoder pass (the floor), and batched vs one at a time.

    python benchmarks/internalize_speed.py                          # the shipped d2l-smollm2-niah, 2 CPU threads
    python benchmarks/internalize_speed.py --model DIR --docs 8 --tokens 1573 --reps 3

For ``--docs`` NIAH haystacks of ``--tokens`` tokens (default 8 x 1573: chunks of 1024 and 549 tokens at chunk
length 1024), interleaved repetitions of:
(a) the floor: the context encoder alone over every chunk, one unpadded chunk at a time;
(b) ``internalize`` one document at a time;
(c) ``internalize`` of all documents in one call (chunks packed by length).
Reports medians and the ratios (b)/(a), (c)/(a) and (c)/(b). Writes benchmarks/results/internalize_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from lora_hyper.api.doc_to_lora import DocToLoRA
from lora_hyper.data_modules.niah_protocol import niah_examples
from lora_hyper.encoders.chunking import encode_documents

from common import time_call, write_result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="d2l-smollm2-niah", help="model dir or shipped name")
    p.add_argument("--docs", type=int, default=8)
    p.add_argument("--tokens", type=int, default=1573)
    p.add_argument("--chunk-length", type=int, default=1024)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="internalize_speed")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d2l = DocToLoRA.from_pretrained(args.model, device=device)
    docs = [e.context for e in niah_examples(d2l.tokenizer, args.tokens, args.docs, seed=0, split="speed")]
    batch = encode_documents(d2l.tokenizer, docs, chunk_length=args.chunk_length, system=d2l.system_prompt)
    chunks = [
        ids[mask.bool()].unsqueeze(0).to(device)
        for ids, mask in zip(batch["ctx_input_ids"], batch["ctx_attention_mask"])
    ]

    @torch.no_grad()
    def floor() -> None:
        for ids in chunks:
            d2l.encoder(ids, torch.ones_like(ids))

    def one_at_a_time() -> None:
        for doc in docs:
            d2l.internalize([doc], chunk_length=args.chunk_length)

    def batched() -> None:
        d2l.internalize(docs, chunk_length=args.chunk_length)

    runs = {
        "encoder_floor": floor,
        "internalize_one_at_a_time": one_at_a_time,
        "internalize_batched": batched,
    }
    batched()  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.reps):
        for key, fn in runs.items():
            times[key].append(time_call(fn, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "one_at_a_time_over_floor": med["internalize_one_at_a_time"] / med["encoder_floor"],
        "batched_over_floor": med["internalize_batched"] / med["encoder_floor"],
        "batched_over_one_at_a_time": med["internalize_batched"] / med["internalize_one_at_a_time"],
    }
    for k, v in med.items():
        print(f"{k:>28}: {v:.2f} s")
    for k, v in ratios.items():
        print(f"{k:>28}: {v:.3f}")
    payload = {
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "docs": args.docs,
        "tokens_per_doc": args.tokens,
        "chunk_lengths": [int(c.shape[1]) for c in chunks],
        "reps": args.reps,
        "threads": args.threads if device.type == "cpu" else None,
        "seconds": times,
        "median_s": med,
        "ratios": ratios,
        "targets": {
            "internalize <= 1.2x the encoder floor": ratios["one_at_a_time_over_floor"] <= 1.2,
            "batched never slower than one at a time": ratios["batched_over_one_at_a_time"] <= 1.0,
        },
    }
    print(f"wrote {write_result(args.name, payload, args.out_dir)}")


if __name__ == "__main__":
    main()
