"""Doc-to-LoRA under DDP and FSDP2 (ModelParallelStrategy + fully_shard) on 2 CPU processes (gloo).

Each run trains the same tiny model 3 steps on the same 4 documents (global batch 4: one process with batch 4,
or two with batch 2) and the hypernetwork weights must match the single-process run. Tolerance: atol 2e-5,
rtol 1e-4 on every parameter; the runs differ only in float summation order (gradients averaged over two
processes instead of summed in one batch), which AdamW turns into differences of ~1e-7 relative to lr 1e-3.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = r"""
import sys
import torch
import lightning as L
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from lora_hyper.encoders.chunking import encode_documents
from lora_hyper.data_modules.collate import collate_lm, lm_example
from lora_hyper.modules.d2l import DocToLoRAModule

strategy, devices, model_dir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.set_num_threads(1)
NUMBERS = ["1234", "42", "2024", "100"]
# documents of different lengths: every batch is encoded in several packed slices (several hypernet forwards)
DOCS = [f"The grass is green. {'The sky is blue. ' * k}The special magic number is {n}." for k, n in zip([0, 4, 1, 6], NUMBERS)]
Q = "What is the special magic number?"


class Module(DocToLoRAModule):
    def configure_model(self):
        if self.hypernet is None:
            torch.manual_seed(0)  # identical initial hypernetwork in every process and run
        super().configure_model()

    def on_train_end(self):
        assert self.read_step == 1, self.read_step
        state = {}
        for k, v in self.hypernet.state_dict().items():
            v = v.full_tensor() if hasattr(v, "full_tensor") else v
            state[k] = v.detach().cpu().contiguous()
        lora = self.internalize(DOCS[:2], chunk_length=6)  # every rank: a sharded hypernet needs all of them
        state["internalized.delta"] = lora.delta("down_proj").detach().cpu().contiguous()
        if self.trainer.is_global_zero:
            save_file(state, out)


def collate(items):
    tok = collate.tokenizer
    batch = encode_documents(tok, [DOCS[i] for i in items])
    batch.update(collate_lm([lm_example(tok, Q, NUMBERS[i]) for i in items], tok.pad_token_id))
    batch["qa_doc_index"] = torch.arange(len(items))
    return batch


if __name__ == "__main__":
    from lora_hyper.base_model import load_tokenizer

    collate.tokenizer = load_tokenizer(model_dir)
    # the reading trigger fires after the second step's objective (averaged over ranks): gate and L1 from step 2
    module = Module(base_model=model_dir, lora={"rank": 4},
                    perceiver={"latent_dim": 32, "n_latents": 4, "n_blocks": 1, "chunk_gate": True},
                    loss={"l1_weight": 0.01, "read_loss": 1e6, "read_window": 2},
                    optim={"lr": 1e-3, "warmup": 0, "schedule": "constant"},
                    runtime={"attn_implementation": "sdpa"})
    if strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy
        strat = ModelParallelStrategy(data_parallel_size=devices, tensor_parallel_size=1)
    else:
        strat = strategy
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strat, max_steps=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    loader = DataLoader(list(range(4)), batch_size=4 // devices, shuffle=False, collate_fn=collate)
    trainer.fit(module, loader)
"""


def _run(tmp_path: Path, model_dir: Path, strategy: str, devices: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    script = tmp_path / "train_d2l.py"
    script.write_text(SCRIPT)
    out = tmp_path / f"{strategy}.safetensors"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), strategy, str(devices), str(model_dir), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(str(out))


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_llama_dir):
    tmp = tmp_path_factory.mktemp("single")
    return _run(tmp, tiny_llama_dir, "auto", 1)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2"])
def test_two_processes_match_single_process(strategy, single, tmp_path, tiny_llama_dir):
    multi = _run(tmp_path, tiny_llama_dir, strategy, 2)
    assert multi.keys() == single.keys()
    init_scale_b = torch.zeros_like(single["scale_B"])
    assert (single["scale_B"] - init_scale_b).abs().max() > 1e-4  # training moved the weights
    for k in single:
        torch.testing.assert_close(multi[k], single[k], atol=2e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
