"""Map the top-level ``data_modules/`` and ``callbacks/`` folders into the ``lora_hyper`` namespace.

pyproject.toml cannot express a package-dir mapping whose subpackages are discovered with a prefix,
so this file does only that; all metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

MAPPED = {"lora_hyper.data_modules": "data_modules", "lora_hyper.callbacks": "callbacks"}

packages = find_packages(include=["lora_hyper", "lora_hyper.*"])
for prefix, folder in MAPPED.items():
    packages.append(prefix)
    packages += [f"{prefix}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir={"lora_hyper": "lora_hyper", **MAPPED},
    package_data={
        "": ["*.yaml", "*.json", "*.jsonl", "*.txt", "*.jinja", "*.md"],
        "lora_hyper.data_modules.builtin_tasks": ["*/metadata.yaml", "*/data.jsonl"],
        "lora_hyper": ["assets/pretrained/*/*.json", "assets/pretrained/*/*.safetensors"],
    },
    include_package_data=True,
)
