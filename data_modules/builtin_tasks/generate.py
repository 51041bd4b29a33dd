"""Generate the built-in task corpus (run once; output committed): ``python -m lora_hyper.data_modules.builtin_tasks.generate``.

Every task is a deterministic string, list, arithmetic or classification transformation with a short
answer scored by exact match. Many tasks share an input format (word lists, number lists, pairs of
numbers), so only the description tells them apart: a base model cannot guess the task from the input.
The output depends only on ``SEED``; re-running rewrites identical files.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

try:
    from .task_descriptions import DESCRIPTIONS
except ImportError:  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from task_descriptions import DESCRIPTIONS

SEED = 1234
N_TRAIN, N_TEST = 200, 40
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

WORDS = (
    "apple river stone cloud tiger garden window pencil orange silver candle forest bridge rocket planet "
    "basket guitar jacket marble pepper rabbit saddle temple violin wizard yellow anchor bottle castle dragon "
    "engine falcon ginger hammer island jungle kettle lemon mirror needle oyster parrot quilt ribbon spider "
    "tunnel umbrella valley walnut zebra bread chair dance eagle flame grape honey ivory jewel knife lamp "
    "melon night ocean piano queen robot sugar table uncle vase whale yacht cat dog sun sky map pen cup box "
    "hat bus car egg fox ink jam key log net owl pig rug toy van web zoo ant bee cow elk gem hen jar kit "
    "mud nut oak pot ray sea tea urn wig yak ball bell book boat cake coin corn desk door drum fish frog "
    "gift goat hill king kite leaf lion milk moon nest page pear ring road rose salt seed ship shoe snow "
    "star tree wall wolf wind yarn blanket cabinet dolphin feather giraffe harbor lantern mountain notebook "
    "pumpkin rainbow sandwich teacher village whistle"
).split()
VOWELS = set("aeiou")


def words(rng: random.Random, lo: int, hi: int, unique_len: str | None = None) -> list[str]:
    """``lo..hi`` distinct words; ``unique_len='max'|'min'`` makes the longest/shortest word unique."""
    while True:
        ws = rng.sample(WORDS, rng.randint(lo, hi))
        if unique_len is None:
            return ws
        lens = [len(w) for w in ws]
        target = max(lens) if unique_len == "max" else min(lens)
        if lens.count(target) == 1:
            return ws


def numbers(rng: random.Random, lo: int, hi: int, vmax: int = 99) -> list[int]:
    return [rng.randint(0, vmax) for _ in range(rng.randint(lo, hi))]


def pig_latin(word: str) -> str:
    if word[0] in VOWELS:
        return word + "way"
    i = next((k for k, c in enumerate(word) if c in VOWELS or (c == "y" and k > 0)), len(word))
    return word[i:] + word[:i] + "ay"


_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0..999 (``three hundred forty-two``)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    rest = n % 100
    return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


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


def _pair(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    return rng.randint(lo, hi), rng.randint(lo, hi)


def _ints(xs: list[int]) -> str:
    return " ".join(map(str, xs))


def _mixed_case(rng: random.Random, ws: list[str]) -> str:
    styles = [str.upper, str.title, lambda w: "".join(c.upper() if rng.random() < 0.5 else c for c in w)]
    return " ".join(rng.choice(styles)(w) for w in ws)


def _dupes(rng: random.Random) -> list[str]:
    base = rng.sample(WORDS, rng.randint(3, 5))
    out = base + [rng.choice(base) for _ in range(rng.randint(1, 3))]
    rng.shuffle(out)
    return out


def _shift(word: str) -> str:
    return "".join(chr((ord(c) - 97 + 1) % 26 + 97) for c in word)


def _sub_pair(rng: random.Random) -> tuple[int, int]:
    a, b = _pair(rng, 10, 99)
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
    return _mixed_case(rng, ws), " ".join(ws)


def _multiply(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(2, 30), rng.randint(2, 12)
    return f"{a} {b}", str(a * b)


def _date(rng: random.Random) -> tuple[str, str]:
    y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}"


# Each generator returns (input, output) for one random example.
Gen = Callable[[random.Random], tuple[str, str]]


def _w(fn: Callable[[list[str]], str], lo: int = 3, hi: int = 6, unique_len: str | None = None) -> Gen:
    def gen(rng: random.Random) -> tuple[str, str]:
        ws = words(rng, lo, hi, unique_len)
        return " ".join(ws), fn(ws)

    return gen


def token(rng: random.Random) -> str:
    """A real word or a pronounceable made-up one (so single-word tasks have enough distinct inputs)."""
    if rng.random() < 0.5:
        return rng.choice(WORDS)
    onsets, nuclei, codas = (
        "b c d f g h k l m n p r s t v w z br st pl tr ch sh".split(),
        "aeiou",
        ["", "", "n", "r", "s", "t"],
    )
    return "".join(
        rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas) for _ in range(rng.randint(2, 3))
    )


def _one(fn: Callable[[str], str]) -> Gen:
    return lambda rng: (w := token(rng), fn(w))


def _nums(fn: Callable[[list[int]], str], lo: int = 4, hi: int = 7) -> Gen:
    return lambda rng: (_ints(xs := numbers(rng, lo, hi)), fn(xs))


TASKS: dict[str, Gen] = {
    "uppercase": _w(lambda ws: " ".join(ws).upper()),
    "lowercase": _lower,
    "capitalize_words": _w(lambda ws: " ".join(w.capitalize() for w in ws)),
    "reverse_words": _w(lambda ws: " ".join(reversed(ws))),
    "reverse_letters": _one(lambda w: w[::-1]),
    "first_word": _w(lambda ws: ws[0]),
    "last_word": _w(lambda ws: ws[-1]),
    "longest_word": _w(lambda ws: max(ws, key=len), unique_len="max"),
    "shortest_word": _w(lambda ws: min(ws, key=len), unique_len="min"),
    "count_words": _w(lambda ws: str(len(ws)), 2, 9),
    "count_letters": _one(lambda w: str(len(w))),
    "count_vowels": _one(lambda w: str(sum(c in VOWELS for c in w))),
    "acronym": _w(lambda ws: "".join(w[0] for w in ws).upper(), 3, 5),
    "remove_vowels": _one(lambda w: "".join(c for c in w if c not in VOWELS)),
    "repeat_words": _w(lambda ws: " ".join(f"{w} {w}" for w in ws), 2, 4),
    "dedupe_words": lambda rng: (" ".join(ws := _dupes(rng)), " ".join(dict.fromkeys(ws))),
    "sort_words": _w(lambda ws: " ".join(sorted(ws))),
    "comma_list": _w(lambda ws: ", ".join(ws), 3, 5),
    "join_with_hyphens": _w(lambda ws: "-".join(ws), 3, 5),
    "snake_case": _snake,
    "camel_case": _w(lambda ws: ws[0] + "".join(w.capitalize() for w in ws[1:]), 2, 4),
    "pig_latin": _one(pig_latin),
    "caesar_shift": _one(_shift),
    "sort_numbers": _nums(lambda xs: _ints(sorted(xs))),
    "sort_numbers_desc": _nums(lambda xs: _ints(sorted(xs, reverse=True))),
    "max_number": _nums(lambda xs: str(max(xs))),
    "min_number": _nums(lambda xs: str(min(xs))),
    "sum_numbers": lambda rng: (
        _ints(xs := [rng.randint(1, 20) for _ in range(rng.randint(3, 5))]),
        str(sum(xs)),
    ),
    "add_two": lambda rng: (_ints(p := _pair(rng, 10, 99)), str(p[0] + p[1])),
    "subtract_two": lambda rng: (_ints(p := _sub_pair(rng)), str(p[0] - p[1])),
    "multiply_two": _multiply,
    "parity": lambda rng: (str(n := rng.randint(0, 9999)), "even" if n % 2 == 0 else "odd"),
    "digit_sum": lambda rng: (str(n := rng.randint(100, 99999)), str(sum(map(int, str(n))))),
    "increment_each": _nums(lambda xs: _ints([x + 1 for x in xs]), 3, 6),
    "number_to_words": lambda rng: (str(n := rng.randint(0, 999)), number_words(n)),
    "extract_number": lambda rng: (rng.choice(_NUMBER_FRAMES).format(n=(n := rng.randint(2, 500))), str(n)),
    "sentiment": _review,
    "topic": _topic,
    "date_format": _date,
    "count_even": _nums(lambda xs: str(sum(x % 2 == 0 for x in xs))),
}


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
    for name in sorted(TASKS):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "descriptions": DESCRIPTIONS[name],
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
