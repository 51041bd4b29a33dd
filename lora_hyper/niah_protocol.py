"""The needle-in-a-haystack protocol of Doc-to-LoRA: filler haystack, magic-number needle, balanced depths, lengths."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

NIAH_QUESTION = "What is the special magic number? Reply with only the number."
NEEDLE_TEMPLATE = "The special magic number is {number}."
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
QUESTION_VARIANTS = (
    "What is the special magic number mentioned in the text? Reply with only the number.",
    "Which number is the special magic number? Answer with the number only.",
    "Tell me the special magic number. Reply with only the number.",
    "What special magic number was given? Reply with only the number.",
)
HAYSTACKS = ("repeat", "prose")
# The varied-prose haystack: different sentences on many topics (shuffled per haystack) instead of one repeated
# paragraph, so the needle is not the only sentence that differs from its neighbours. None holds a number.
PROSE_SENTENCES = (
    "The old lighthouse keeper climbed the spiral stairs every evening before sunset.",
    "Rivers carry fine sediment from the mountains down to the wide coastal plains.",
    "A good loaf of bread needs patience more than it needs expensive flour.",
    "The committee postponed its decision until the engineers had finished their survey.",
    "Foxes often hunt at dawn, when small animals leave their burrows to feed.",
    "Her grandmother kept a garden of herbs that smelled of rosemary and thyme.",
    "Trains leaving the northern station were delayed by snow on the tracks.",
    "Most comets spend their lives far beyond the orbit of the outer planets.",
    "The museum reopened its east wing after restoring the painted ceiling.",
    "Children in the village learned to swim in the cold lake each summer.",
    "A well-tuned violin responds to the lightest touch of the bow.",
    "The market square filled with stalls selling cheese, honey and fresh apples.",
    "Glaciers move slowly, grinding the rock beneath them into smooth valleys.",
    "He wrote letters by hand because he believed they were harder to ignore.",
    "The new bridge was designed to sway slightly in strong winds.",
    "Bees communicate the direction of flowers through a careful dance.",
    "The library smelled of dust, leather and the faint sweetness of old paper.",
    "Sailors once navigated by the stars when clouds did not hide them.",
    "A small bakery on the corner sold out of pastries before noon.",
    "The mountain path narrowed where the landslide had taken part of the slope.",
    "Owls can turn their heads much farther than most other birds.",
    "The orchestra rehearsed the final movement until the timing felt natural.",
    "Farmers rotated their crops to keep the soil rich and healthy.",
    "The city council debated whether to plant more trees along the avenue.",
    "Volcanic soil is often fertile, which draws farmers to dangerous slopes.",
    "She repaired the broken clock with tools borrowed from a neighbour.",
    "The desert cools quickly after dark, and the sky fills with stars.",
    "Penguins huddle together to survive the long antarctic winter.",
    "The students argued about the ending of the novel for an entire afternoon.",
    "Copper turns green over the years as it reacts with the air.",
    "A quiet harbour sheltered the fishing boats from the evening storm.",
    "The chef tasted the soup and added a pinch of salt and pepper.",
    "Ancient roads were built with layers of stone, gravel and sand.",
    "The cat slept on the windowsill wherever the afternoon sun fell.",
    "Wind turbines turned slowly on the ridge above the valley.",
    "The town celebrated the harvest with music, lanterns and long tables.",
    "Coral reefs shelter a remarkable variety of fish and small creatures.",
    "The detective noticed that the muddy boots did not match the footprints.",
    "Paper was once so costly that scribes reused old parchment.",
    "The hikers filled their bottles at a spring beside the trail.",
    "A thick fog rolled in from the sea and hid the distant cliffs.",
    "The gardener pruned the roses so that they would bloom again in autumn.",
    "Elephants remember the paths to water across great distances.",
    "The printing press made books cheaper and spread new ideas quickly.",
    "The ferry crossed the strait twice a day in calm weather.",
    "Maple trees turn bright red and orange in the cooler months.",
    "The apprentice watched carefully as the potter shaped the clay.",
    "Thunder rumbled over the hills long before the rain arrived.",
    "The scientist recorded every measurement in a worn green notebook.",
    "Wolves travel in packs and cooperate to bring down larger prey.",
)
DEPTH_BINS = 10
_NUMBER = re.compile(r"(?<!\d)\d{4}(?!\d)")


@dataclass
class NIAHExample:
    """One haystack: its text, the question, the 4-digit answer, its measured token count and the needle depth."""

    context: str
    question: str
    answer: str
    n_tokens: int
    depth: float


def needle_sentence(number: int) -> str:
    """The needle for ``number``."""
    return NEEDLE_TEMPLATE.format(number=number)


def extract_number(text: str) -> str | None:
    """The first stand-alone 4-digit number in ``text`` (``None`` when there is none)."""
    match = _NUMBER.search(text)
    return match.group(0) if match else None


def has_repeated_digit(number: int | str) -> bool:
    """Whether two adjacent digits of ``number`` are equal (7399, 8111): the needles trained models miss most."""
    digits = str(number)
    return any(a == b for a, b in zip(digits, digits[1:]))


def draw_needle_number(rng: random.Random, repeated_digit_prob: float | None = None) -> int:
    """A 4-digit needle number: uniform when ``repeated_digit_prob`` is None (27.1% of them repeat a digit).

    Otherwise a number with adjacent repeated digits with that probability, one without otherwise, each uniform
    within its kind, so training can weight the numbers models copy worst (7399 read back as 7933).
    """
    if repeated_digit_prob is None:
        return rng.randint(1000, 9999)
    if not 0.0 <= repeated_digit_prob <= 1.0:
        raise ValueError(f"repeated_digit_prob must be in [0, 1] or None, got {repeated_digit_prob}.")
    want = rng.random() < repeated_digit_prob
    while True:
        number = rng.randint(1000, 9999)
        if has_repeated_digit(number) == want:
            return number


def example_rng(seed: int, *parts: Any) -> random.Random:
    """A generator keyed by ``seed`` and ``parts`` (string seeding is stable across processes and runs)."""
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def balanced_depth(index: int, rng: random.Random, n_bins: int = DEPTH_BINS) -> float:
    """A depth in bin ``index % n_bins`` of ``[0, 1)``, so consecutive examples cover the bins evenly."""
    return ((index % n_bins) + rng.random()) / n_bins


def resolve_length(spec: int | str, native: int | None = None) -> int:
    """Token count of a length spec: ``256``, ``"4K"`` (x1024) or ``"2x"`` (multiple of the native window)."""
    text = str(spec).strip()
    try:
        if text[-1:].lower() == "x":
            if native is None:
                raise ValueError(
                    f"NIAH length {spec!r} is a window multiple but the native window is unknown."
                )
            value = float(text[:-1]) * native
        elif text[-1:].lower() == "k":
            value = float(text[:-1]) * 1024
        else:
            value = float(text)
    except ValueError as err:
        if "native window" in str(err):
            raise
        raise ValueError(
            f"Bad NIAH length {spec!r}: use a token count (256, '4K') or a multiple of the native window ('2x')."
        ) from None
    if value < 1 or value != value:
        raise ValueError(f"NIAH length {spec!r} must be at least 1 token.")
    return int(round(value))


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _word_counts(tokenizer: Any, words: list[str]) -> list[int]:
    """Each word's token count with its leading space (cached per word on the tokenizer)."""
    cache = getattr(tokenizer, "_lora_hyper_word_tokens", None)
    if not isinstance(cache, dict):
        cache = {}
        try:
            tokenizer._lora_hyper_word_tokens = cache
        except AttributeError:
            pass
    for w in words:
        if w not in cache:
            cache[w] = max(1, _count(tokenizer, " " + w))
    return [cache[w] for w in words]


def _filler_words(
    tokenizer: Any,
    haystack: str = "repeat",
    rng: random.Random | None = None,
    n_tokens: int = 0,
    sentences: tuple[str, ...] | None = None,
) -> tuple[list[str], list[int]]:
    """Words of the haystack text and their token counts: the repeated filler paragraph, or (``prose``) the
    varied sentences (``sentences``, default :data:`PROSE_SENTENCES`) shuffled by ``rng``, reshuffled each
    pass, enough of them for ``n_tokens``."""
    if haystack not in HAYSTACKS:
        raise ValueError(f"Unknown haystack {haystack!r}: use one of {HAYSTACKS}.")
    if haystack == "repeat":
        words = FILLER.split()
        return words, _word_counts(tokenizer, words)
    rng = rng or random.Random(0)
    words: list[str] = []
    counts: list[int] = []
    while sum(counts) < n_tokens + 64 or not words:
        order = list(sentences or PROSE_SENTENCES)
        rng.shuffle(order)
        more = " ".join(order).split()
        words += more
        counts += _word_counts(tokenizer, more)
    return words, counts


def _fill(words: list[str], counts: list[int], start: int, budget: int) -> tuple[list[str], int]:
    """Filler words from cycle position ``start`` whose token counts sum closest to ``budget``."""
    out: list[str] = []
    total, i = 0, start
    while budget > 0:
        c = counts[i % len(words)]
        if total + c > budget and (total + c - budget) > (budget - total):
            break
        out.append(words[i % len(words)])
        total += c
        i += 1
        if total >= budget:
            break
    return out, total


def _insert_at(words: list[str], depth: float) -> int:
    """Index of the sentence boundary in ``words`` nearest to ``depth`` of the way through."""
    target = round(depth * len(words))
    for off in range(len(words) + 1):
        for k in (target - off, target + off):
            if 0 <= k <= len(words) and (k == 0 or words[k - 1].endswith(".")):
                return k
    return 0


def make_niah_example(
    tokenizer: Any,
    n_tokens: int,
    depth: float,
    rng: random.Random,
    number: int | None = None,
    haystack: str = "repeat",
    sentences: tuple[str, ...] | None = None,
) -> NIAHExample:
    """A haystack of about ``n_tokens`` tokens (measured with ``tokenizer``) with the needle at ``depth`` in [0, 1].

    The filler paragraph repeats; the needle goes at the sentence boundary nearest the requested depth; the
    number is drawn from ``rng`` unless given. The measured token count is usually exact and always within
    one filler word of the target (the needle alone when ``n_tokens`` is shorter than it). ``haystack="prose"``
    builds the haystack from varied sentences (``sentences``, default :data:`PROSE_SENTENCES`, shuffled)
    instead of the filler; training draws its prose from a disjoint set so the evaluation prose stays unseen.
    """
    if n_tokens < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}.")
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}.")
    number = rng.randint(1000, 9999) if number is None else int(number)
    if not 1000 <= number <= 9999:
        raise ValueError(f"The magic number must have 4 digits, got {number}.")
    needle = needle_sentence(number)
    words, counts = _filler_words(tokenizer, haystack, rng, n_tokens, sentences)
    starts = [k for k in range(len(words)) if k == 0 or words[k - 1].endswith(".")]
    start = rng.choice(starts) if haystack == "repeat" else 0
    filler, _ = _fill(words, counts, start, n_tokens - _count(tokenizer, " " + needle))
    for _ in range(4):  # correct for tokenizers whose counts are not additive over words
        pos = _insert_at(filler, depth)
        context = " ".join(filler[:pos] + [needle] + filler[pos:])
        measured = _count(tokenizer, context)
        delta = n_tokens - measured
        if delta == 0 or (delta < 0 and not filler):
            break
        if delta > 0:
            more, added = _fill(words, counts, start + len(filler), delta)
            if not more:
                break
            filler += more
        else:
            excess, drop, removed = -delta, 0, 0
            while drop < len(filler) and removed < excess:
                drop += 1
                removed += counts[(start + len(filler) - drop) % len(words)]
            last = counts[(start + len(filler) - drop) % len(words)]
            if drop and removed - excess > excess - (removed - last):
                drop -= 1  # dropping the last word overshoots more than keeping it falls short
            if drop <= 0:
                break
            filler = filler[:-drop]
    return NIAHExample(
        context=context, question=NIAH_QUESTION, answer=str(number), n_tokens=measured, depth=depth
    )


def niah_examples(
    tokenizer: Any, n_tokens: int, count: int, seed: int, split: str = "eval", haystack: str = "repeat"
) -> list[NIAHExample]:
    """``count`` deterministic haystacks of ``n_tokens`` tokens with depths balanced over 10 bins
    (``haystack``: the repeated filler, or ``prose`` for varied sentences)."""
    out = []
    for j in range(count):
        rng = example_rng(seed, split, n_tokens, j)
        out.append(make_niah_example(tokenizer, n_tokens, balanced_depth(j, rng), rng, haystack=haystack))
    return out


def filler_text(tokenizer: Any, n_tokens: int) -> str:
    """About ``n_tokens`` tokens of the repeated filler paragraph, without a needle (chunk-health probes)."""
    words, counts = _filler_words(tokenizer)
    filler, _ = _fill(words, counts, 0, n_tokens)
    return " ".join(filler)
