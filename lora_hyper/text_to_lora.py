"""Moved to :mod:`lora_hyper.api.text_to_lora`; this import path stays for one release (the same module object)."""

import sys

from lora_hyper.api import text_to_lora as _moved

sys.modules[__name__] = _moved
