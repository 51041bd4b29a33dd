"""LightningDataModules (imported as ``lora_hyper.data_modules``); batch contracts in ``collate.py``."""
