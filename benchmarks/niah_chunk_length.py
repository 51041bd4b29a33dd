"""NIAH exact match of saved D2L models at one haystack length, cut into chunks of different lengths.

    python benchmarks/niah_chunk_length.py outputs/d2l-smollm2-niah-fast d2l-smollm2-niah --bin 1024 \
        --chunk-lengths 1024,512,256 --samples 20        # ~10 s per model and chunk length on 2 cores

Tells whether a model misses needles because of the haystack's length or because of the chunk's: the same 20
haystacks (the evaluation's, seed 0) are internalized whole-chunk and cut finer. A model that reads 512-token chunks
but not 1024-token ones was trained on chunks shorter than the evaluation's (the reference protocol evaluates at
1024). Writes ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lora_hyper import DocToLoRA
from lora_hyper.niah_eval import evaluate_niah

from common import write_result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="shipped names or saved DocToLoRA directories")
    p.add_argument(
        "--bin", default="1024", help="haystack length in tokens (or a native-window multiple, '2x')"
    )
    p.add_argument("--chunk-lengths", default="1024,512,256", help="comma-separated chunk lengths in tokens")
    p.add_argument("--samples", type=int, default=20, help="haystacks (the evaluation's, seed 0)")
    p.add_argument("--haystack", default="repeat", choices=["repeat", "prose"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="niah_chunk_length")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    lengths = [int(v) for v in args.chunk_lengths.split(",")]
    if any(n < 1 for n in lengths):
        raise SystemExit(f"--chunk-lengths must be positive token counts, got {args.chunk_lengths!r}.")
    rows = []
    for name in args.models:
        model = DocToLoRA.from_pretrained(name)
        for chunk_length in lengths:
            t = time.perf_counter()
            res = evaluate_niah(
                model,
                bins=[args.bin],
                samples_per_bin=args.samples,
                chunk_length=chunk_length,
                batch_size=5,
                haystack=args.haystack,
            )
            row = {
                "model": name,
                "chunk_length": chunk_length,
                "accuracy": res["bins"][0]["accuracy"],
                "n": res["bins"][0]["n"],
                "misses": [
                    {"answer": s["answer"], "output": s["output"]} for s in res["samples"] if not s["correct"]
                ],
                "wall_s": time.perf_counter() - t,
            }
            rows.append(row)
            print(f"{name}: chunk {chunk_length}: {row['accuracy']:.2f} ({row['n']} haystacks)", flush=True)
    path = write_result(
        args.name,
        {
            "command": " ".join(["python", "benchmarks/niah_chunk_length.py", *sys.argv[1:]]),
            "bin": args.bin,
            "haystack": args.haystack,
            "rows": rows,
        },
        args.out_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
