"""Tiny offline models for tests, demos and docs: a Llama-style causal LM and a chat tokenizer built from configs."""

from __future__ import annotations

from pathlib import Path

import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = (
    "The special magic number is 1234. What is the special magic number? Reply with only the number. "
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
    "0 1 2 3 4 5 6 7 8 9 10 42 100 2024 a b c d e f g h i j k l m n o p q r s t u v w x y z "
    "Reverse the words. Uppercase the text. Sort the list. Count the letters. Answer: yes no true false. "
    "user assistant system You are a helpful assistant. Question: Context: Document: Task: Input: Output:"
)


def make_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer with ChatML special tokens and chat template (trained in milliseconds)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.padding_side = "left"
    return fast


def make_tiny_llama(
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 512,
    max_position_embeddings: int = 256,
    seed: int = 0,
):
    """A randomly initialised Llama-style causal LM (fp32, eval mode) and its tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_tiny_llama(directory: str | Path, **kwargs) -> Path:
    """Write a tiny model + tokenizer to ``directory`` so it loads with ``load_base_model(directory)``."""
    directory = Path(directory)
    model, tokenizer = make_tiny_llama(**kwargs)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def save_tiny_text_encoder(
    directory: str | Path, hidden_size: int = 32, seed: int = 0, num_layers: int = 1
) -> Path:
    """Write a tiny random BERT sentence encoder + WordPiece tokenizer (``AutoModel``-loadable) to ``directory``."""
    import string

    from transformers import BertConfig, BertModel, BertTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = list(string.ascii_lowercase + string.digits + ".,!?-:;'\"()")
    words = sorted({w.strip(".,:").lower() for w in _CORPUS.split()} - {""})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *[f"##{c}" for c in letters], *words]
    vocab = list(dict.fromkeys(vocab))
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab=str(directory / "vocab.txt"))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory
