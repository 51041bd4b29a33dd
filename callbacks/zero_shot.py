"""ZeroShotTaskEvaluation: adapters from unseen descriptions, scored on seen and held-out tasks next to baselines."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L

from lora_hyper.data_modules.task_sampler import description_prompt
from lora_hyper.lora import LoRABatch, load_peft

from .periodic import PeriodicEvaluation

METHODS = ("t2l", "base", "base_with_description", "multitask", "oracle")


class ZeroShotTaskEvaluation(PeriodicEvaluation):
    """Every ``every_n_steps`` steps and at fit end, score Text-to-LoRA adapters on tasks' test examples.

    Adapters come from *evaluation* descriptions (never trained on) of seen tasks and of held-out tasks.
    Baselines (computed once): the base model, the base model with the description in its prompt, and,
    when given, a multi-task adapter and per-task oracle adapters. Scores use the corpus's metric.
    Each evaluation announces what it will generate, then prints one line per task as it goes; ``max_answers``
    bounds its cost (the test examples per task are cut once, at the first evaluation, so scores stay
    comparable from one evaluation to the next).

    Args:
        every_n_steps: evaluate every this many optimizer steps (0: only at fit end).
        max_tasks: at most this many seen and this many held-out tasks (sorted by name).
        examples_per_task: test examples per task (at most; see ``max_answers``).
        n_descriptions: evaluation descriptions per task (one adapter each; scores are averaged).
        multitask_adapter: PEFT directory of a multi-task LoRA baseline.
        oracle_library: folder of ``<task>/`` PEFT oracle adapters.
        output_dir: where ``zero_shot.json``/``zero_shot.csv`` go (default: the trainer's log dir).
        max_new_tokens: generation budget per answer.
        corpus: task corpus to evaluate on (default: the DataModule's ``corpus``).
        held_out_tasks: held-out tasks when ``corpus`` is given (None: the corpus's own list).
        max_answers: most answers one evaluation generates, over all tasks, descriptions and baselines;
            fewer test examples per task when needed, at least one (None: no bound).
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        max_tasks: int = 8,
        examples_per_task: int = 8,
        n_descriptions: int = 2,
        multitask_adapter: str | None = None,
        oracle_library: str | None = None,
        output_dir: str | None = None,
        max_new_tokens: int = 32,
        corpus: str | None = None,
        held_out_tasks: list[str] | None = None,
        max_answers: int | None = 256,
    ) -> None:
        super().__init__(every_n_steps, output_dir)
        if max_answers is not None and max_answers < 1:
            raise ValueError(f"max_answers must be >= 1 or None, got {max_answers}.")
        self.max_answers = max_answers
        self._n_examples: int | None = None
        self.max_tasks = max_tasks
        self.examples_per_task = examples_per_task
        self.n_descriptions = n_descriptions
        self.multitask_adapter = multitask_adapter
        self.oracle_library = oracle_library
        self.max_new_tokens = max_new_tokens
        self.corpus_path = corpus
        self.held_out_tasks = held_out_tasks
        self._corpus: Any = None
        self._baselines: dict[str, dict[str, float]] | None = None
        self.history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ hooks
    def on_evaluation_due(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.run(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.evaluated_now(trainer):
            self.run(trainer, pl_module, final=True)

    # ------------------------------------------------------------------ evaluation
    def corpus(self, trainer: L.Trainer | None = None) -> Any:
        """The corpus evaluated on: ``corpus=`` if given, else the DataModule's."""
        if self._corpus is None:
            if self.corpus_path is not None:
                from lora_hyper.data_modules.task_corpus import TaskCorpus

                self._corpus = TaskCorpus.load(self.corpus_path, held_out_tasks=self.held_out_tasks)
            else:
                self._corpus = getattr(getattr(trainer, "datamodule", None), "corpus", None)
                if self._corpus is None:
                    raise ValueError(
                        "ZeroShotTaskEvaluation needs a task corpus: pass corpus= or train with a TaskCorpusDataModule."
                    )
        return self._corpus

    def task_groups(self, corpus: Any) -> dict[str, list[str]]:
        """``{"seen": [...], "held_out": [...]}`` task names, at most ``max_tasks`` each."""
        seen = [n for n in sorted(corpus.tasks) if n not in set(corpus.held_out_tasks)]
        held = sorted(corpus.held_out_tasks)
        return {"seen": seen[: self.max_tasks], "held_out": held[: self.max_tasks]}

    def _answers(self, module: Any, task: Any, prompts: list[str], adapters: LoRABatch | None) -> list[str]:
        return module.generate(
            prompts,
            adapters,
            system=task.system_message,
            max_new_tokens=self.max_new_tokens,
            share_adapters=True,  # one adapter per task (or description) serves all its prompts
        )

    def _score(self, task: Any, predictions: list[str], references: list[str]) -> float:
        from lora_hyper.data_modules.task_corpus import score

        return sum(score(p, r, task.metric) for p, r in zip(predictions, references)) / max(
            len(references), 1
        )

    def score_prompts(
        self,
        module: Any,
        task: Any,
        prompts: list[str],
        references: list[str],
        adapters: LoRABatch | None = None,
    ) -> float:
        """Mean score of ``module``'s answers to ``prompts`` (optionally with ``adapters``), e.g. for other baselines."""
        return self._score(task, self._answers(module, task, prompts, adapters), references)

    def _descriptions(self, task: Any) -> list[str]:
        return list(task.eval_descriptions or task.descriptions)[: self.n_descriptions]

    def _oracle_dir(self, name: str) -> Path | None:
        path = Path(self.oracle_library) / name if self.oracle_library else None
        return path if path is not None and path.is_dir() else None

    def _answers_per_example(self, task: Any, baselines: bool) -> int:
        """Answers generated per test example: one per description, plus the baselines' on the first run."""
        n = len(self._descriptions(task))
        if baselines:
            n += 1 + n + bool(self.multitask_adapter) + (self._oracle_dir(task.name) is not None)
        return n

    def examples_per_task_now(self, corpus: Any) -> int:
        """Test examples per task, fixed at the first evaluation so that at most ``max_answers`` are generated."""
        if self._n_examples is None:
            n = self.examples_per_task
            if self.max_answers is not None:
                tasks = [corpus.tasks[t] for group in self.task_groups(corpus).values() for t in group]
                per_example = sum(self._answers_per_example(t, self._baselines is None) for t in tasks)
                n = max(1, min(n, self.max_answers // max(per_example, 1)))
            self._n_examples = n
        return self._n_examples

    def announce(self, corpus: Any, step: int, final: bool = False) -> str:
        """One line saying what this evaluation generates: tasks, examples, descriptions, baselines, answers."""
        groups = self.task_groups(corpus)
        n = self.examples_per_task_now(corpus)
        baselines = self._baselines is None
        answers = sum(
            len(corpus.tasks[t].examples("test")[:n]) * self._answers_per_example(corpus.tasks[t], baselines)
            for names in groups.values()
            for t in names
        )
        extra = ""
        if baselines:
            names = ["base", "base_with_description"] + ["multitask"] * bool(self.multitask_adapter)
            names += ["oracle"] * bool(self.oracle_library)
            extra = f" + baselines {', '.join(names)}"
        bound = f", max_answers={self.max_answers}" if self.max_answers is not None else ""
        return (
            f"[zero-shot] {'final evaluation' if final else 'evaluation'} at step {step}: "
            f"{sum(map(len, groups.values()))} tasks ({len(groups['seen'])} seen, {len(groups['held_out'])} held out)"
            f" x {n} test examples x {self.n_descriptions} description(s){extra}: {answers} answers of <= "
            f"{self.max_new_tokens} tokens (examples_per_task={self.examples_per_task}{bound})"
        )

    def evaluate(
        self, module: Any, corpus: Any, say: Callable[[str], None] | None = None
    ) -> dict[str, dict[str, float]]:
        """``{method: {task: score}}`` for the T2L adapters (and baselines on the first call).

        ``say`` gets one line per task as it is scored (name, scores, seconds).
        """
        results: dict[str, dict[str, float]] = {"t2l": {}}
        n_examples = self.examples_per_task_now(corpus)
        baselines = self._baselines is None
        if baselines:
            self._baselines = {m: {} for m in METHODS[1:]}
            multitask = load_peft(self.multitask_adapter) if self.multitask_adapter else None
        order = [(g, n) for g, names in self.task_groups(corpus).items() for n in names]
        for i, (group, name) in enumerate(order, start=1):
            start = time.perf_counter()
            task = corpus.tasks[name]
            examples = task.examples("test")[:n_examples]
            if not examples:
                if say is not None:
                    say(f"[zero-shot] {i}/{len(order)} {group} {name}: no test examples, skipped")
                continue
            prompts, refs = [e.prompt for e in examples], [e.response for e in examples]
            descriptions = self._descriptions(task)
            adapters = module.generate_lora(descriptions)
            preds = self._answers(module, task, [p for _ in descriptions for p in prompts], adapters)
            results["t2l"][name] = self._score(task, preds, refs * len(descriptions))
            if baselines:
                self._score_baselines(module, task, prompts, refs, descriptions, multitask)
            if say is not None:
                scores = [("t2l", results["t2l"][name])] + [
                    (m, s[name]) for m, s in (self._baselines or {}).items() if name in s
                ]
                shown = "  ".join(f"{m} {v:.3f}" for m, v in scores)
                say(
                    f"[zero-shot] {i}/{len(order)} {group} {name}: {shown} ({time.perf_counter() - start:.1f} s)"
                )
        results.update({m: dict(s) for m, s in (self._baselines or {}).items() if s})
        return results

    def _score_baselines(
        self,
        module: Any,
        task: Any,
        prompts: list[str],
        refs: list[str],
        descriptions: list[str],
        multitask: LoRABatch | None,
    ) -> None:
        """Score the baselines of one task into ``self._baselines`` (first evaluation only)."""
        name, b = task.name, self._baselines
        if b is None:
            return
        b["base"][name] = self._score(task, self._answers(module, task, prompts, None), refs)
        with_desc = [description_prompt(d, p) for d in descriptions for p in prompts]
        b["base_with_description"][name] = self._score(
            task, self._answers(module, task, with_desc, None), refs * len(descriptions)
        )
        if multitask is not None:
            b["multitask"][name] = self._score(task, self._answers(module, task, prompts, multitask), refs)
        oracle_dir = self._oracle_dir(name)
        if oracle_dir is not None:
            oracle = load_peft(oracle_dir)
            b["oracle"][name] = self._score(task, self._answers(module, task, prompts, oracle), refs)

    def summarize(self, results: dict[str, dict[str, float]], corpus: Any) -> dict[str, float]:
        """Flat metrics: ``zero_shot/<method>/<task>`` and ``zero_shot/<method>/mean_<seen|held_out>``."""
        groups = self.task_groups(corpus)
        flat: dict[str, float] = {}
        for method, scores in results.items():
            for task, value in scores.items():
                flat[f"zero_shot/{method}/{task}"] = value
            for group, names in groups.items():
                values = [scores[n] for n in names if n in scores]
                if values:
                    flat[f"zero_shot/{method}/mean_{group}"] = sum(values) / len(values)
        return flat

    def run(self, trainer: L.Trainer, pl_module: Any, final: bool = False) -> dict[str, float]:
        """Evaluate now, announcing it and printing a line per task; log metrics, write JSON/CSV (rank 0).

        Every rank evaluates the same tasks, descriptions and prompts: a sharded model (the FSDP2 hypernetwork, an
        FSDP base) runs each forward collectively, so no rank may generate alone; rank 0's scores are the ones
        logged and written (the others compute the same numbers)."""
        from lora_hyper.progress import say

        self.mark(trainer)
        corpus = self.corpus(trainer)
        lead = trainer.is_global_zero
        if lead:
            say(trainer, self.announce(corpus, trainer.global_step, final))
        was_training = pl_module.training
        pl_module.eval()
        start = time.perf_counter()
        try:
            results = self.evaluate(pl_module, corpus, say=partial(say, trainer) if lead else None)
        finally:
            pl_module.train(was_training)
        if lead:
            means = self.summarize({"t2l": results["t2l"]}, corpus)
            shown = "  ".join(f"{k.rsplit('/', 1)[-1]} {v:.3f}" for k, v in means.items() if "/mean_" in k)
            done = f"[zero-shot] done in {time.perf_counter() - start:.1f} s"
            say(trainer, done + (f": t2l {shown}" if shown else ""))
        flat = _from_rank_zero(trainer, self.summarize(results, corpus))  # monitors agree on every rank
        self.log_metrics(trainer, flat)  # Lightning's loggers write on rank 0 only
        if lead:
            self.history.append({"step": trainer.global_step, "scores": results})
            self._write(trainer, results)
        return flat

    def _write(self, trainer: L.Trainer, results: dict[str, dict[str, float]]) -> None:
        out = self.output_path(trainer)
        out.mkdir(parents=True, exist_ok=True)
        (out / "zero_shot.json").write_text(json.dumps(self.history, indent=1) + "\n")
        groups = self.task_groups(self.corpus(trainer))
        split = {n: g for g, names in groups.items() for n in names}
        new = not (out / "zero_shot.csv").exists()
        with open(out / "zero_shot.csv", "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "method", "split", "task", "score"])
            for method, scores in results.items():
                for task, value in scores.items():
                    writer.writerow([trainer.global_step, method, split.get(task, ""), task, f"{value:.6f}"])


def _from_rank_zero(trainer: L.Trainer, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a no-op on one process)."""
    if getattr(trainer, "world_size", 1) <= 1:
        return value
    return trainer.strategy.broadcast(value, src=0)
