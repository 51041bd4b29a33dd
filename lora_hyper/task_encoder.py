"""Moved to :mod:`lora_hyper.encoders.task`; this import path stays for one release (the same module object)."""

import sys

from lora_hyper.encoders import task as _moved

sys.modules[__name__] = _moved
