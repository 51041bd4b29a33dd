"""What an internalized document costs: generated-adapter bytes against the KV cache the document would need.

    python benchmarks/memory.py --quick     # CPU: measures SmolLM2's real KV cache at 1K tokens
    python benchmarks/memory.py             # also measures it at 8K tokens (GPU recommended)

For document lengths 1K, 8K, 32K and 128K tokens: bytes of the Doc-to-LoRA adapter (down_proj, r=8, one
rank block per 1024-token chunk plus the bias block; and with a rank budget) against the KV-cache bytes, for
SmolLM2-135M (KV measured where it fits, from the config elsewhere) and, from their published configs,
Gemma-2-2b-it and Mistral-7B-Instruct-v0.2. All in bf16. Adapter bytes come from real ``LoRABatch`` objects
(on the meta device, so nothing is allocated). NIAH accuracy at 4x with the rank budget is read from
benchmarks/results/niah*.json when that benchmark has run. Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from transformers import Gemma2Config, LlamaConfig, MistralConfig

from lora_hyper.base_model import kv_cache_bytes, load_base_model
from lora_hyper.lora import LoRABatch, LoRASpec

from common import RESULTS, write_result

LENGTHS = [1024, 8192, 32768, 131072]
CHUNK = 1024
RANK = 8

# Published configs (hub config.json values), so no download is needed.
CONFIGS = {
    "SmolLM2-135M-Instruct": LlamaConfig(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
    ),
    "gemma-2-2b-it": Gemma2Config(
        hidden_size=2304,
        intermediate_size=9216,
        num_hidden_layers=26,
        num_attention_heads=8,
        num_key_value_heads=4,
        head_dim=256,
    ),
    "Mistral-7B-Instruct-v0.2": MistralConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
    ),
}


def down_proj_spec(cfg) -> LoRASpec:
    """The D2L target (down_proj: intermediate -> hidden) of every layer, resolved from a config."""
    return LoRASpec(
        ["down_proj"],
        rank=RANK,
        n_layers=cfg.num_hidden_layers,
        layers_path="model.layers",
        module_paths={"down_proj": "mlp.down_proj"},
        shapes={"down_proj": (cfg.intermediate_size, cfg.hidden_size)},
    )


def adapter_bytes(spec: LoRASpec, rank: int) -> int:
    return LoRABatch.zeros(spec, 1, rank=rank, device="meta", dtype=torch.bfloat16).num_bytes()


@torch.no_grad()
def measured_kv_bytes(model, n_tokens: int) -> int:
    """Bytes of the cache the model really builds for ``n_tokens`` tokens (bf16-equivalent)."""
    device = next(model.parameters()).device
    ids = torch.randint(100, 1000, (1, n_tokens), device=device)
    cache = model(input_ids=ids, use_cache=True).past_key_values
    total = 0
    for layer in cache.layers:
        for t in (layer.keys, layer.values):
            total += t.numel() * 2  # count bf16 bytes whatever the compute dtype
    return total


def niah_at_4x(out_dir: str | None, niah: str | None = None) -> dict | None:
    """NIAH accuracy with the rank budget, from the NIAH benchmark's JSON (``--niah``, else the first found)."""
    folders = [Path(out_dir)] if out_dir else []
    names = ("niah_gpu.json", "niah.json", "niah_cpu.json", "niah_quick.json")
    for path in [Path(niah)] if niah else (f / n for f in [*folders, RESULTS] for n in names):
        if path.exists():
            data = json.loads(path.read_text())
            budget = data.get("rank_budget_eval")
            if budget:
                return {"source": str(path), **budget}
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="measure the real KV cache at 1K tokens only")
    p.add_argument("--rank-budget", type=int, default=64)
    p.add_argument("--out-dir", default=None)
    p.add_argument("--niah", default=None, help="the NIAH result JSON whose rank-budget evaluation to quote")
    args = p.parse_args()

    measure_upto = 1024 if args.quick else 8192
    device = "cuda" if torch.cuda.is_available() else "cpu"
    smol, _ = load_base_model("smollm2-135m-instruct", device=device)
    rows = []
    for model_name, cfg in CONFIGS.items():
        spec = down_proj_spec(cfg)
        for n in LENGTHS:
            chunks = math.ceil(n / CHUNK)
            full_rank = chunks * RANK + RANK  # one block per chunk + the bias block
            kv = kv_cache_bytes(cfg, n, dtype_bytes=2)
            row = {
                "model": model_name,
                "tokens": n,
                "chunks": chunks,
                "adapter_rank": full_rank,
                "adapter_bytes": adapter_bytes(spec, full_rank),
                "adapter_bytes_budget": adapter_bytes(spec, min(args.rank_budget, full_rank)),
                "kv_cache_bytes": kv,
                "kv_source": "config",
            }
            if model_name.startswith("SmolLM2") and n <= measure_upto:
                measured = measured_kv_bytes(smol, n)
                assert measured == kv, (measured, kv)  # the formula is the cache the model builds
                row["kv_source"] = "measured"
            row["kv_over_adapter"] = kv / row["adapter_bytes"]
            row["kv_over_adapter_budget"] = kv / row["adapter_bytes_budget"]
            rows.append(row)
            print(
                f"{model_name:>26} {n:>7} tok: KV {kv / 2**20:10.1f} MiB | adapter {row['adapter_bytes'] / 2**20:8.2f} MiB "
                f"({row['kv_over_adapter']:.0f}x smaller) | budget r={args.rank_budget}: "
                f"{row['adapter_bytes_budget'] / 2**20:6.2f} MiB ({row['kv_over_adapter_budget']:.0f}x)"
            )
    at_128k = [r for r in rows if r["tokens"] == 131072]
    payload = {
        "config": {
            "lengths": LENGTHS,
            "chunk_length": CHUNK,
            "rank": RANK,
            "rank_budget": args.rank_budget,
            "dtype": "bfloat16",
            "targets": ["down_proj"],
            "quick": args.quick,
        },
        "rows": rows,
        "target": "at 128K tokens the adapter (with the rank budget) is at most 1/250 of the KV cache",
        "target_met_128k": {r["model"]: r["kv_over_adapter_budget"] >= 250 for r in at_128k},
        "niah_4x_with_rank_budget": niah_at_4x(args.out_dir, args.niah),
    }
    print(f"wrote {write_result('memory', payload, args.out_dir)}")


if __name__ == "__main__":
    main()
