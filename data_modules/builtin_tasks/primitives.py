"""Building blocks of the built-in tasks: the word list, random inputs, and generator factories.

A generator (``Gen``) draws one ``(input, output)`` example from the given RNG, so a task's examples depend only on
the corpus seed and the task's name.
"""

from __future__ import annotations

import random
from collections.abc import Callable

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


ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """English words for 0..999 (``three hundred forty-two``)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    rest = n % 100
    return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))


def pair(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    return rng.randint(lo, hi), rng.randint(lo, hi)


def ints(xs: list[int]) -> str:
    return " ".join(map(str, xs))


def mixed_case(rng: random.Random, ws: list[str]) -> str:
    styles = [str.upper, str.title, lambda w: "".join(c.upper() if rng.random() < 0.5 else c for c in w)]
    return " ".join(rng.choice(styles)(w) for w in ws)


# Each generator returns (input, output) for one random example.
Gen = Callable[[random.Random], tuple[str, str]]


def from_words(
    fn: Callable[[list[str]], str], lo: int = 3, hi: int = 6, unique_len: str | None = None
) -> Gen:
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


def from_token(fn: Callable[[str], str]) -> Gen:
    return lambda rng: (w := token(rng), fn(w))


def from_numbers(fn: Callable[[list[int]], str], lo: int = 4, hi: int = 7) -> Gen:
    return lambda rng: (ints(xs := numbers(rng, lo, hi)), fn(xs))
