"""``python -m lora_hyper`` runs the same CLI as the ``lora-hyper`` console script."""

from lora_hyper.cli import console_main

if __name__ == "__main__":
    console_main()
