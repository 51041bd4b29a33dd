"""Moved to :mod:`lora_hyper.encoders.chunking`; this import path stays for one release (the same module object)."""

import sys

from lora_hyper.encoders import chunking as _moved

sys.modules[__name__] = _moved
