"""How well can a task be read from a description never trained on? A linear probe on task-encoder embeddings.

    python benchmarks/t2l_description_probe.py                 # MiniLM (the default T2L task encoder), ~2.5 min
    python benchmarks/t2l_description_probe.py --base-model smollm2-135m-instruct   # + the base LLM's pooling, ~6 min
    python benchmarks/t2l_description_probe.py --training-descriptions   # + the train-only paraphrases (_paraphrases)

A linear classifier is fitted on the embeddings of every seen task's *training* descriptions (label: the task) and
scored on the *evaluation* descriptions training never sees: the share of new phrasings whose task a linear read-out
of the embedding recovers. A hypernetwork's first layer is such a read-out, so this bounds how often T2L can even
tell which seen task a new phrasing asks for. Also reported: how often an evaluation description's nearest training
description (Euclidean) belongs to another task, the probe with Gaussian noise on the training embeddings (the
cheapest augmentation), and regularised read-outs of the default encoder's embeddings (mixup between two phrasings
of one task, input dropout, a one-hidden-layer MLP, as a hypernetwork's trunk is): if none of them reads new
phrasings much better, no training trick on the hypernetwork's side will. With ``--base-model``, also the
concatenation of both encoders' features. Writes ``benchmarks/results/t2l_description_probe.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import Any

import torch

from lora_hyper.data_modules.task_corpus import TaskCorpus
from lora_hyper.encoders.task import DEFAULT_ENCODER, TaskEncoder, packaged_minilm_dir, pool_hidden

from common import write_result

# Regularised read-outs of the default encoder: name -> linear_probe keyword arguments.
READOUTS: dict[str, dict[str, Any]] = {
    "linear": {},
    "linear, within-task mixup": {"mixup": True},
    "linear, within-task mixup + noise 1.0": {"mixup": True, "noise": 1.0},
    "linear, input dropout 0.3": {"dropout": 0.3},
    "mlp 512": {"hidden": 512},
    "mlp 512, input dropout 0.3": {"hidden": 512, "dropout": 0.3},
    "mlp 512, noise 1.0": {"hidden": 512, "noise": 1.0},
    "mlp 512, within-task mixup": {"hidden": 512, "mixup": True},
}


def linear_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    x_eval: torch.Tensor,
    y_eval: torch.Tensor,
    noise: float = 0.0,
    seed: int = 0,
    mixup: bool = False,
    dropout: float = 0.0,
    hidden: int = 0,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Softmax regression (or a ``hidden``-wide GELU MLP) on standardised features, full batch, Adam, 400 steps.

    ``noise``: Gaussian noise on the training features; ``mixup``: each training row mixed with a phrasing of the
    same task (one drawn per task and step; weight ~ U(0, 1)); ``dropout``: on the input. Returns train and eval accuracy
    (and the predicted class of every evaluation row with ``return_predictions``).
    """
    torch.manual_seed(seed)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, x_eval = (x - mu) / sd, (x_eval - mu) / sd
    n_classes = int(y.max()) + 1
    layers: list[torch.nn.Module] = [torch.nn.Dropout(dropout)]
    if hidden:
        layers += [torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, n_classes)]
    else:
        layers.append(torch.nn.Linear(x.shape[1], n_classes))
    head = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3 if hidden else 1e-2)
    rows = [torch.nonzero(y == c).flatten() for c in range(n_classes)]
    for _ in range(400):
        head.train()
        inp = x
        if mixup:
            partner = torch.stack([r[torch.randint(len(r), (1,))][0] for r in rows])[y]
            lam = torch.rand(len(x), 1)
            inp = lam * x + (1 - lam) * x[partner]
        if noise > 0:
            inp = inp + noise * torch.randn_like(inp)
        loss = torch.nn.functional.cross_entropy(head(inp), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    with torch.no_grad():
        predicted = head(x_eval).argmax(-1)
        out: dict[str, Any] = {
            "train_accuracy": (head(x).argmax(-1) == y).float().mean().item(),
            "eval_accuracy": (predicted == y_eval).float().mean().item(),
        }
    if return_predictions:
        out["eval_predictions"] = predicted.tolist()
    return out


def misread_pairs(predicted: list[int], y_eval: torch.Tensor, names: list[str]) -> list[dict[str, Any]]:
    """(true task, task read) pairs of the misread evaluation descriptions, most frequent first."""
    counts = Counter((names[t], names[p]) for t, p in zip(y_eval.tolist(), predicted, strict=True) if t != p)
    return [{"task": t, "read_as": r, "n": n} for (t, r), n in counts.most_common()]


def nearest_other_task(x: torch.Tensor, y: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor) -> float:
    """Share of evaluation descriptions whose nearest training description belongs to another task."""
    nearest = torch.cdist(x_eval, x).argmin(dim=1)
    return (y[nearest] != y_eval).float().mean().item()


def finetuned_encoder_probe(
    path: str,
    train: list[str],
    y: torch.Tensor,
    evals: list[str],
    y_eval: torch.Tensor,
    epochs: int,
    lr: float = 5e-5,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Fine-tune the sentence encoder itself (all layers) with a linear task head on the training descriptions;
    score the evaluation descriptions after every epoch. Embeddings as ``TaskEncoder`` makes them (mean-pooled,
    ``sqrt(dim)``-scaled unit vectors). Tells whether the encoder *can* learn to tell twin tasks apart from ~27
    phrasings each, which a frozen encoder's read-out cannot (``--finetune-epochs``)."""
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32)
    dim = int(model.config.hidden_size)
    head = torch.nn.Linear(dim, int(y.max()) + 1)
    opt = torch.optim.AdamW(
        [{"params": model.parameters(), "lr": lr}, {"params": head.parameters(), "lr": 1e-2}],
        weight_decay=0.01,
    )

    def embed(texts: list[str]) -> torch.Tensor:
        enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        pooled = pool_hidden(model(**enc).last_hidden_state, enc["attention_mask"], "mean")
        return torch.nn.functional.normalize(pooled, dim=-1) * dim**0.5

    def predict(texts: list[str]) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([head(embed(texts[i : i + 128])).argmax(-1) for i in range(0, len(texts), 128)])

    curve = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train))
        for i in range(0, len(train), batch_size):
            rows = order[i : i + batch_size].tolist()
            loss = torch.nn.functional.cross_entropy(head(embed([train[r] for r in rows])), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        predicted = predict(evals)
        curve.append({"epoch": epoch, "eval_accuracy": (predicted == y_eval).float().mean().item()})
        print(
            f"fine-tuned encoder, epoch {epoch}: eval-description task accuracy {curve[-1]['eval_accuracy']:.3f}"
        )
    train_acc = (predict(train) == y).float().mean().item()
    return {
        "lr": lr,
        "epochs": epochs,
        "seed": seed,
        "train_accuracy": train_acc,
        "curve": curve,
        "eval_predictions": predicted.tolist(),
    }


@torch.no_grad()
def base_model_embeddings(name: str, texts: list[str], layers: list[int]) -> dict[int, torch.Tensor]:
    """Mean-pooled hidden states of each of ``layers`` of a causal LM (the base model as its own task encoder)."""
    from transformers import AutoModelForCausalLM

    from lora_hyper.base_model import load_tokenizer, resolve_model_path

    tok = load_tokenizer(name)
    tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name), dtype=torch.float32).eval()
    out: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for i in range(0, len(texts), 64):
        enc = tok(texts[i : i + 64], padding=True, return_tensors="pt")
        hidden = model.model(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"].unsqueeze(-1).float()
        for layer in layers:
            out[layer].append((hidden[layer] * mask).sum(1) / mask.sum(1))
    return {layer: torch.cat(v) for layer, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help="task encoder (name or directory)")
    p.add_argument("--base-model", default=None, help="also probe this causal LM's mean-pooled hidden states")
    p.add_argument("--layers", default="8,15,22,30", help="hidden-state layers of --base-model to probe")
    p.add_argument(
        "--noise", default="0,0.5,1.0", help="Gaussian noise std on standardised training features"
    )
    p.add_argument("--seeds", type=int, default=2, help="seeds of each regularised read-out (mean reported)")
    p.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="also fine-tune the encoder itself with a task head for this many epochs (~1-2 min each)",
    )
    p.add_argument("--finetune-lr", type=float, default=5e-5)
    p.add_argument(
        "--training-descriptions",
        action="store_true",
        help="fit on the tasks' train-only paraphrases (training_descriptions) as well (own JSON name, *_paraphrases)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="t2l_description_probe")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    corpus = TaskCorpus.load("builtin", training_descriptions=args.training_descriptions)
    result_name = args.name + ("_paraphrases" if args.training_descriptions else "")
    seen = [t for t in corpus.tasks if t not in corpus.held_out_tasks]
    train, y, evals, y_eval = [], [], [], []
    for i, name in enumerate(seen):
        task = corpus.tasks[name]
        train += list(task.train_descriptions)
        y += [i] * len(task.train_descriptions)
        evals += list(task.eval_descriptions)
        y_eval += [i] * len(task.eval_descriptions)
    labels, labels_eval = torch.tensor(y), torch.tensor(y_eval)
    noises = [float(n) for n in args.noise.split(",")]

    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    encoder = TaskEncoder(args.encoder)
    x, x_eval = features[args.encoder] = (encoder.encode(train), encoder.encode(evals))
    if args.base_model:
        layers = [int(v) for v in args.layers.split(",")]
        for layer, both in base_model_embeddings(args.base_model, train + evals, layers).items():
            key = f"{args.base_model} layer {layer} mean"
            features[key] = (both[: len(train)], both[len(train) :])
            features[f"{args.encoder} + {key}"] = (
                torch.cat([x, features[key][0]], 1),
                torch.cat([x_eval, features[key][1]], 1),
            )

    probes: dict[str, Any] = {}
    for key, (fx, fx_eval) in features.items():
        probes[key] = {
            "nearest_training_description_in_another_task": nearest_other_task(
                fx, labels, fx_eval, labels_eval
            ),
            "linear_probe": {str(n): linear_probe(fx, labels, fx_eval, labels_eval, n, 0) for n in noises},
        }
        shown = ", ".join(
            f"noise {n}: {v['eval_accuracy']:.3f}" for n, v in probes[key]["linear_probe"].items()
        )
        print(f"{key}: eval-description task accuracy {shown}", flush=True)
    # which phrasings the default encoder's plain linear read-out misreads, and as which task
    plain = linear_probe(x, labels, x_eval, labels_eval, return_predictions=True)
    misread = misread_pairs(plain["eval_predictions"], labels_eval, seen)

    readouts: dict[str, Any] = {}
    for name, kwargs in READOUTS.items():
        runs = [linear_probe(x, labels, x_eval, labels_eval, seed=s, **kwargs) for s in range(args.seeds)]
        accs = [r["eval_accuracy"] for r in runs]
        readouts[name] = {"eval_accuracy_mean": sum(accs) / len(accs), "eval_accuracy_per_seed": accs}
        print(
            f"{args.encoder}, {name}: eval-description task accuracy {readouts[name]['eval_accuracy_mean']:.3f}"
        )
    finetuned: dict[str, Any] | None = None
    if args.finetune_epochs:
        encoder_dir = str(packaged_minilm_dir()) if args.encoder == DEFAULT_ENCODER else args.encoder
        finetuned = finetuned_encoder_probe(
            encoder_dir, train, labels, evals, labels_eval, args.finetune_epochs, args.finetune_lr
        )
        finetuned["misread"] = misread_pairs(finetuned.pop("eval_predictions"), labels_eval, seen)
    path = write_result(
        result_name,
        {
            "command": " ".join(["python", "benchmarks/t2l_description_probe.py", *sys.argv[1:]]),
            "seen_tasks": len(seen),
            "training_descriptions": len(train),
            "train_only_paraphrases": args.training_descriptions,
            "evaluation_descriptions": len(evals),
            "probes": probes,
            "misread_by_linear_probe": {
                "encoder": args.encoder,
                "n": sum(m["n"] for m in misread),
                "pairs": misread,
            },
            "regularised_readouts": {"encoder": args.encoder, "seeds": args.seeds, "readouts": readouts},
            "finetuned_encoder": finetuned,
            "wall_s": time.perf_counter() - start,
        },
        args.out_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
