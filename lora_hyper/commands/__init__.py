"""Inference commands of the ``lora-hyper`` CLI; each module exposes ``main(argv) -> int``."""
