"""How much of a context encoder's activations differs between tokens, layer by layer (issue 11).

    python benchmarks/encoder_profile.py                     # packaged SmolLM2-135M and Gemma-3-270M, ~1 min
    python benchmarks/encoder_profile.py --model some/dir    # any causal LM (hub name, local dir, packaged alias)

The Perceiver normalises every token's activation by its RMS before reading it. Models with "massive activations"
(a few channels hundreds of times larger than the rest, nearly the same at every token) leave little of the
document in what it then sees. Per hidden state ``hidden_states[j]`` (0 = embeddings; ``j`` is the input of layer
``j``) over NIAH haystacks, BOS dropped:

- ``top4_share``: share of a token's squared norm in its 4 largest channels (mean over tokens);
- ``token_cosine``: mean cosine between two tokens' activations of the same haystack;
- ``token_variance_share``: after per-token RMS normalisation, the share of the energy that varies between tokens,
  ``sum |x_t - mean_t x|^2 / sum |x_t|^2``: the part of the input that can carry the document.

It also lists the hidden states the CPU recipes read (early exit; per-layer with the ``even`` map onto SmolLM2's 30
layers). Writes ``benchmarks/results/encoder_profile.json`` and a PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch

from lora_hyper.base_model import load_base_model
from lora_hyper.encoders.layer_map import map_layers
from lora_hyper.niah_protocol import niah_examples

from common import environment, write_result

DEFAULT_MODELS = ("smollm2-135m-instruct", "gemma3-270m")
TARGET_LAYERS = 30  # SmolLM2-135M, the target of every CPU recipe


@torch.no_grad()
def profile(
    model: torch.nn.Module, tokenizer: Any, n_tokens: int, count: int, seed: int
) -> list[dict[str, float]]:
    """Per hidden state: mean RMS, top-4 channel share, token cosine and token-variance share over ``count``
    haystacks of ``n_tokens`` tokens."""
    sums: list[dict[str, float]] = []
    for ex in niah_examples(tokenizer, n_tokens, count, seed):
        ids = tokenizer(ex.context, return_tensors="pt")["input_ids"]
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
        for j, h in enumerate(out.hidden_states):
            h = h[0, 1:].float()  # BOS dropped: it is an outlier by design in most models
            energy = h.pow(2)
            rms = energy.mean(-1).sqrt()
            x = h / rms[:, None]
            xn = torch.nn.functional.normalize(h, dim=-1)
            t = xn.shape[0]
            row = {
                "rms": rms.mean().item(),
                "top4_share": (energy.topk(4, dim=-1).values.sum(-1) / energy.sum(-1)).mean().item(),
                "token_cosine": ((xn @ xn.T).sum().item() - t) / (t * (t - 1)),
                "token_variance_share": ((x - x.mean(0)).pow(2).sum() / x.pow(2).sum()).item(),
            }
            if len(sums) <= j:
                sums.append({k: 0.0 for k in row})
            for k, v in row.items():
                sums[j][k] += v / count
    return [{k: round(v, 4) for k, v in r.items()} for r in sums]


def read_by_recipes(depth: int) -> dict[str, Any]:
    """The hidden states the CPU recipes feed the hypernetwork from an encoder of ``depth`` layers."""
    early = max(1, depth // 4)  # early exit: the output of layer early-1 = hidden_states[early]
    per_layer = map_layers("even", depth, TARGET_LAYERS) if depth != TARGET_LAYERS else list(range(depth))
    return {"early_exit": early, "per_layer_even": per_layer}


def plot(results: dict[str, dict[str, Any]], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        share = [row["token_variance_share"] for row in r["layers"]]
        (line,) = ax.plot(range(len(share)), share, marker=".", label=name)
        e = r["read_by_recipes"]["early_exit"]
        ax.scatter([e], [share[e]], s=90, facecolors="none", edgecolors=line.get_color())
    ax.set_xlabel("hidden state j (0 = embeddings; input of layer j)")
    ax.set_ylabel("token-variance share after RMS norm")
    ax.set_title("What varies between tokens (circle: the early-exit recipes' state)")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="causal LM(s) to profile (default: the packaged two)")
    p.add_argument("--tokens", type=int, default=1024, help="haystack length (the recipes' chunk length)")
    p.add_argument("--haystacks", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, dict[str, Any]] = {}
    for name in args.model or DEFAULT_MODELS:
        t0 = time.perf_counter()
        model, tokenizer = load_base_model(name)
        model.eval()
        layers = profile(model, tokenizer, args.tokens, args.haystacks, args.seed)
        depth = len(layers) - 1
        results[name] = {"depth": depth, "layers": layers, "read_by_recipes": read_by_recipes(depth)}
        reads = results[name]["read_by_recipes"]
        e = layers[reads["early_exit"]]["token_variance_share"]
        pl = [layers[j]["token_variance_share"] for j in reads["per_layer_even"]]
        print(
            f"{name}: token-variance share {e:.3f} at the early-exit state; per-layer states mean "
            f"{sum(pl) / len(pl):.3f} (min {min(pl):.3f}); {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        del model
    payload = {
        "command": " ".join(["python", "benchmarks/encoder_profile.py", *sys.argv[1:]]),
        "config": {"tokens": args.tokens, "haystacks": args.haystacks, "seed": args.seed, "bos": "dropped"},
        "environment": environment(),
        "models": results,
    }
    path = write_result("encoder_profile", payload, args.out_dir)
    plot(results, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
