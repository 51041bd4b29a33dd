"""Hypernetworks: plain nn.Modules mapping encoded inputs to a LoRABatch."""
