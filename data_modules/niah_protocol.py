"""The NIAH protocol lives in the library (``lora_hyper.niah_protocol``); re-exported for data modules."""

from lora_hyper.niah_protocol import (  # noqa: F401
    DEPTH_BINS,
    FILLER,
    HAYSTACKS,
    NEEDLE_TEMPLATE,
    NIAH_QUESTION,
    PROSE_SENTENCES,
    QUESTION_VARIANTS,
    NIAHExample,
    balanced_depth,
    draw_needle_number,
    example_rng,
    extract_number,
    filler_text,
    has_repeated_digit,
    make_niah_example,
    needle_sentence,
    niah_examples,
    resolve_length,
)
