"""LightningModules: one per hypernetwork objective family, sharing modules/base.py."""
