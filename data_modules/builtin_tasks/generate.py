"""Generate the built-in task corpus (run once; output committed): ``python -m lora_hyper.data_modules.builtin_tasks.generate``.

Every task is a deterministic string, list, arithmetic or classification transformation with a short
answer scored by exact match. Many tasks share an input format (word lists, number lists, pairs of
numbers), so only the description tells them apart: a base model cannot guess the task from the input.
The output depends only on ``SEED``; re-running rewrites identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from . import family_formats, family_numbers, family_strings
from .primitives import (
    VOWELS,
    WORDS,
    Gen,
    from_numbers,
    from_token,
    from_words,
    ints,
    mixed_case,
    number_words,
    pair,
    pig_latin,
    words,
)
from .task_descriptions import DESCRIPTIONS
from .task_training_descriptions import TRAINING_DESCRIPTIONS

SEED = 1234
N_TRAIN, N_TEST = 200, 40
MIN_DESCRIPTIONS = 30
HELD_OUT = [
    "lowercase",
    "last_word",
    "shortest_word",
    "count_vowels",
    "join_with_hyphens",
    "sort_numbers_desc",
    "min_number",
    "subtract_two",
]
CASED = {"uppercase", "lowercase", "capitalize_words", "acronym", "snake_case", "camel_case"}

_POS = "wonderful excellent delightful fantastic lovely superb brilliant enjoyable charming great".split()
_NEG = "terrible awful dreadful boring horrible disappointing poor annoying dull bad".split()
_THINGS = "movie meal hotel concert book phone service game show trip course app".split()
_REVIEW = [
    "The {t} was {a}.",
    "I found the {t} {a}.",
    "What a {a} {t}.",
    "Honestly, the {t} felt {a} from start to finish.",
    "Our {t} turned out {a}.",
    "My friends said the {t} was {a}, and I agree.",
]
_TOPICS = {
    "sports": (
        "the team scored in the final minute|the striker missed a penalty|our coach changed the lineup|"
        "the runner broke the record|the match went to extra time|the goalkeeper saved the shot|"
        "the cyclists climbed the last hill|the home side won the cup|the referee showed a red card|"
        "the swimmer took gold in the relay"
    ),
    "food": (
        "the soup needed more salt|she baked fresh bread|the pasta was cooked perfectly|we ordered spicy noodles|"
        "the chef grilled the fish|he sliced the ripe mango|the curry simmered for an hour|"
        "they shared a cheese pizza|the salad came with a lemon dressing|grandma made apple pie"
    ),
    "weather": (
        "heavy rain is expected tonight|the wind picked up after noon|it will be sunny and warm|"
        "a storm is moving in from the west|fog covered the valley|snow fell all morning|"
        "temperatures will drop below freezing|a heatwave hit the city|thunder rolled across the plains|"
        "the forecast promises clear skies"
    ),
    "music": (
        "the band played a new song|the singer hit the high note|the orchestra tuned their violins|"
        "the drummer kept a steady beat|she released her second album|the choir sang in harmony|"
        "the pianist played a quiet melody|the guitarist tuned his strings|the festival lineup was announced|"
        "the jazz quartet improvised a solo"
    ),
}
_TOPIC_FRAMES = [
    "{s}.",
    "Yesterday {s}.",
    "People said {s}.",
    "Everyone noticed that {s}.",
    "News today: {s}.",
    "I heard that {s}.",
    "Last week {s}.",
    "Apparently {s}.",
]
_NUMBER_FRAMES = [
    "I bought {n} apples at the market.",
    "There are {n} students in the room.",
    "The train leaves in {n} minutes.",
    "She walked {n} kilometers yesterday.",
    "We counted {n} birds on the roof.",
    "The book has {n} pages.",
    "He scored {n} points in the game.",
    "Only {n} tickets were left.",
]


def _dupes(rng: random.Random) -> list[str]:
    base = rng.sample(WORDS, rng.randint(3, 5))
    out = base + [rng.choice(base) for _ in range(rng.randint(1, 3))]
    rng.shuffle(out)
    return out


def _shift(word: str) -> str:
    return "".join(chr((ord(c) - 97 + 1) % 26 + 97) for c in word)


def _subpair(rng: random.Random) -> tuple[int, int]:
    a, b = pair(rng, 10, 99)
    return (a, b) if a >= b else (b, a)


def _topic(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(sorted(_TOPICS))
    s = rng.choice(_TOPICS[label].split("|"))
    text = rng.choice(_TOPIC_FRAMES).format(s=s)
    return text[0].upper() + text[1:], label


def _review(rng: random.Random) -> tuple[str, str]:
    label = rng.choice(["positive", "negative"])
    adj = rng.choice(_POS if label == "positive" else _NEG)
    return rng.choice(_REVIEW).format(t=rng.choice(_THINGS), a=adj), label


def _snake(rng: random.Random) -> tuple[str, str]:
    ws = words(rng, 2, 4)
    return " ".join(w.capitalize() for w in ws), "_".join(ws)


def _lower(rng: random.Random) -> tuple[str, str]:
    ws = words(rng, 3, 5)
    return mixed_case(rng, ws), " ".join(ws)


def _multiply(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 30), rng.randint(2, 12)
    return f"{a} {b}", str(a * b)


def _date(rng: random.Random) -> tuple[str, str]:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}"


TASKS: dict[str, Gen] = {
    "uppercase": from_words(lambda ws: " ".join(ws).upper()),
    "lowercase": _lower,
    "capitalize_words": from_words(lambda ws: " ".join(w.capitalize() for w in ws)),
    "reverse_words": from_words(lambda ws: " ".join(reversed(ws))),
    "reverse_letters": from_token(lambda w: w[::-1]),
    "first_word": from_words(lambda ws: ws[0]),
    "last_word": from_words(lambda ws: ws[-1]),
    "longest_word": from_words(lambda ws: max(ws, key=len), unique_len="max"),
    "shortest_word": from_words(lambda ws: min(ws, key=len), unique_len="min"),
    "count_words": from_words(lambda ws: str(len(ws)), 2, 9),
    "count_letters": from_token(lambda w: str(len(w))),
    "count_vowels": from_token(lambda w: str(sum(c in VOWELS for c in w))),
    "acronym": from_words(lambda ws: "".join(w[0] for w in ws).upper(), 3, 5),
    "remove_vowels": from_token(lambda w: "".join(c for c in w if c not in VOWELS)),
    "repeat_words": from_words(lambda ws: " ".join(f"{w} {w}" for w in ws), 2, 4),
    "dedupe_words": lambda rng: (" ".join(ws := _dupes(rng)), " ".join(dict.fromkeys(ws))),
    "sort_words": from_words(lambda ws: " ".join(sorted(ws))),
    "comma_list": from_words(lambda ws: ", ".join(ws), 3, 5),
    "join_with_hyphens": from_words(lambda ws: "-".join(ws), 3, 5),
    "snake_case": _snake,
    "camel_case": from_words(lambda ws: ws[0] + "".join(w.capitalize() for w in ws[1:]), 2, 4),
    "pig_latin": from_token(pig_latin),
    "caesar_shift": from_token(_shift),
    "sort_numbers": from_numbers(lambda xs: ints(sorted(xs))),
    "sort_numbers_desc": from_numbers(lambda xs: ints(sorted(xs, reverse=True))),
    "max_number": from_numbers(lambda xs: str(max(xs))),
    "min_number": from_numbers(lambda xs: str(min(xs))),
    "sum_numbers": lambda rng: (
        ints(xs := [rng.randint(1, 20) for _ in range(rng.randint(3, 5))]),
        str(sum(xs)),
    ),
    "add_two": lambda rng: (ints(p := pair(rng, 10, 99)), str(p[0] + p[1])),
    "subtract_two": lambda rng: (ints(p := _subpair(rng)), str(p[0] - p[1])),
    "multiply_two": _multiply,
    "parity": lambda rng: (str(n := rng.randint(0, 9999)), "even" if n % 2 == 0 else "odd"),
    "digit_sum": lambda rng: (str(n := rng.randint(100, 99999)), str(sum(map(int, str(n))))),
    "increment_each": from_numbers(lambda xs: ints([x + 1 for x in xs]), 3, 6),
    "number_to_words": lambda rng: (str(n := rng.randint(0, 999)), number_words(n)),
    "extract_number": lambda rng: (rng.choice(_NUMBER_FRAMES).format(n=(n := rng.randint(2, 500))), str(n)),
    "sentiment": _review,
    "topic": _topic,
    "date_format": _date,
    "count_even": from_numbers(lambda xs: str(sum(x % 2 == 0 for x in xs))),
}


# The families added to the first 40 tasks: string, number/list, and format/extraction/classification tasks, built
# around related-but-different pairs (first/last, ascending/descending, vowels/consonants, to/from a format) so that
# what changes between two descriptions is learnable.
FAMILIES = (family_strings, family_numbers, family_formats)
DESCRIPTIONS = dict(DESCRIPTIONS)
PAIRS: list[tuple[str, str]] = []
for _family in FAMILIES:
    _clash = set(_family.TASKS) & set(TASKS)
    if _clash:
        raise RuntimeError(f"{_family.__name__} redefines tasks {sorted(_clash)}.")
    TASKS.update(_family.TASKS)
    DESCRIPTIONS.update(_family.DESCRIPTIONS)
    CASED |= _family.CASED
    PAIRS += _family.PAIRS


def examples(name: str, n_train: int = N_TRAIN, n_test: int = N_TEST) -> list[dict[str, str]]:
    """``n_train`` then ``n_test`` examples with distinct inputs (test inputs never seen in training)."""
    rng = random.Random(f"{SEED}:{name}")
    seen: set[str] = set()
    rows: list[dict[str, str]] = []
    tries = 0
    while len(rows) < n_train + n_test:
        tries += 1
        if tries > 100 * (n_train + n_test):
            raise RuntimeError(f"{name}: cannot draw {n_train + n_test} distinct inputs.")
        x, y = TASKS[name](rng)
        if x in seen:
            continue
        seen.add(x)
        rows.append({"input": x, "output": y, "split": "train" if len(rows) < n_train else "test"})
    return rows


def main(out: Path | None = None) -> Path:
    """Write ``<out>/<task>/{metadata.yaml,data.jsonl}`` for every task and ``<out>/held_out.yaml``."""
    out = out or Path(__file__).resolve().parent
    if set(TASKS) != set(DESCRIPTIONS):
        raise RuntimeError(f"Tasks and descriptions differ: {sorted(set(TASKS) ^ set(DESCRIPTIONS))}.")
    stray = sorted(set(TRAINING_DESCRIPTIONS) - (set(TASKS) - set(HELD_OUT)))
    if stray:
        raise RuntimeError(f"Training-only descriptions for unknown or held-out tasks: {stray}.")
    every = [
        " ".join(d.casefold().split())
        for table in (DESCRIPTIONS, TRAINING_DESCRIPTIONS)
        for ds in table.values()
        for d in ds
    ]
    if len(every) != len(set(every)):
        raise RuntimeError("A description is used twice: every description must name one task.")
    short = sorted(n for n, ds in DESCRIPTIONS.items() if len(ds) < MIN_DESCRIPTIONS)
    if short:
        raise RuntimeError(f"Tasks with fewer than {MIN_DESCRIPTIONS} descriptions: {short}.")
    for name in sorted(TASKS):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "descriptions": DESCRIPTIONS[name],
            **(
                {"training_descriptions": TRAINING_DESCRIPTIONS[name]}
                if name in TRAINING_DESCRIPTIONS
                else {}
            ),
            "source": {"path": "data.jsonl", "filter": {"split": "train"}},
            "test_source": {"path": "data.jsonl", "filter": {"split": "test"}},
            "prompt_template": "{input}",
            "response_field": "output",
            "metric": "exact_match_cased" if name in CASED else "exact_match",
        }
        (folder / "metadata.yaml").write_text(
            yaml.safe_dump(meta, sort_keys=False, width=120), encoding="utf-8"
        )
        lines = [json.dumps(r, ensure_ascii=False) for r in examples(name)]
        (folder / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "held_out.yaml").write_text(yaml.safe_dump(HELD_OUT, sort_keys=False), encoding="utf-8")
    print(f"wrote {len(TASKS)} tasks ({len(HELD_OUT)} held out) to {out}")
    return out


if __name__ == "__main__":
    main()
