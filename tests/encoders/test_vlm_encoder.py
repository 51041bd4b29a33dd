"""VLM context encoders on tiny random VLMs (Gemma-3, Idefics3, LLaVA): text and image-turn activations, layer maps,
loading from saved directories, and the context-id check of an encoder that is not the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lora_hyper.encoders.chunking import _wrap_ids, encode_documents
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.encoders.layer_map import map_layers
from lora_hyper.encoders.models import encoder_kind, load_context_encoder, load_encoder_tokenizer
from lora_hyper.encoders.vlm import VLMContextEncoder
from lora_hyper.testing_vlm import VLM_FAMILIES, save_tiny_vlm
from lora_hyper.validation import InputError

DOCS = ["The grass is green.", "The sky is blue and the sun is yellow."]


def _images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, shape).astype("uint8")) for shape in ((20, 24, 3), (30, 18, 3))
    ]


@pytest.fixture(scope="module", params=VLM_FAMILIES)
def vlm_dir(request, tmp_path_factory):
    return request.param, save_tiny_vlm(tmp_path_factory.mktemp(request.param), request.param)


def test_layer_maps():
    assert map_layers("even", 34, 26)[:3] == [0, 1, 3] and map_layers("even", 34, 26)[-1] == 33
    assert map_layers("first", 34, 26) == list(range(26))  # the reference: embeddings + 25 layers
    assert map_layers("nearest", 4, 2) == [0, 2] and map_layers("nearest", 2, 4) == [0, 0, 1, 1]
    for name in ("even", "nearest", "first"):
        assert map_layers(name, 5, 5) == list(range(5))  # the same depth: identity
    assert map_layers([3, 0], 4, 2) == [3, 0]
    with pytest.raises(InputError, match="'first' needs an encoder at least as deep"):
        map_layers("first", 2, 4)
    with pytest.raises(InputError, match="must list 2 encoder layers"):
        map_layers([0, 9], 4, 2)
    with pytest.raises(InputError, match="Unknown encoder_layer_map 'strided'"):
        map_layers("strided", 4, 2)


def test_per_layer_features_are_the_mapped_hidden_states(tiny_llama):
    model, tok = tiny_llama
    batch = encode_documents(tok, DOCS, system="")
    ids, mask = batch["ctx_input_ids"], batch["ctx_attention_mask"]
    hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    enc = ContextEncoder(model, "per_layer", n_out_layers=3, layer_map=[1, 0, 1])
    feats, _ = enc(ids, mask)
    for out, j in enumerate([1, 0, 1]):
        torch.testing.assert_close(feats[:, out], hidden[j])


def test_text_and_image_activations(vlm_dir):
    family, path = vlm_dir
    assert encoder_kind(str(path)) == "vlm"
    for mode, n_out, layer_map in (
        ("per_layer", 5, "even"),
        ("per_layer", 2, "first"),
        ("early_exit", None, "even"),
    ):
        enc, tok = load_context_encoder(str(path), mode, None, n_out, layer_map)
        assert isinstance(enc, VLMContextEncoder) and enc.hidden_size == 48 and enc.depth == 3
        batch = encode_documents(tok, DOCS, system="")
        feats, mask = enc(batch["ctx_input_ids"], batch["ctx_attention_mask"])
        torch.testing.assert_close(mask, batch["ctx_attention_mask"])
        inputs = enc.image_inputs(_images())
        ifeats, imask = enc.encode_images(_images())
        n, t = inputs["input_ids"].shape
        if mode == "per_layer":
            assert feats.shape == (2, n_out, batch["ctx_input_ids"].shape[1], 48)
            assert ifeats.shape == (2, n_out, t, 48)
        else:
            assert feats.shape == (2, batch["ctx_input_ids"].shape[1], 48) and ifeats.shape == (2, t, 48)
        assert torch.isfinite(ifeats).all()
        image_id = enc.processor.image_token_id
        is_image = inputs["input_ids"] == image_id
        assert is_image.sum(1).min() >= 1, "no image tokens in the turn"
        assert bool(imask[is_image].all()), "image tokens must be inside the mask"
        assert imask.sum(1).tolist() == [t, t]  # one image each, same token count: all ones


def test_image_turn_uses_the_processor_template(vlm_dir):
    _, path = vlm_dir
    enc, tok = load_context_encoder(str(path), "early_exit")
    text = tok.decode(enc.image_inputs(_images()[:1])["input_ids"][0])
    assert "<start_of_turn>system" in text and "<start_of_turn>user" in text and "model\n" not in text


def test_encoder_tokenizer_is_the_vlms(vlm_dir, tiny_llama_dir):
    _, path = vlm_dir
    tok = load_encoder_tokenizer(str(path))
    assert tok.padding_side == "left" and "<start_of_turn>" in tok.get_vocab()
    assert encoder_kind(str(tiny_llama_dir)) == "causal_lm"
    assert "<|im_start|>" in load_encoder_tokenizer(str(tiny_llama_dir)).get_vocab()


def test_chunk_wrapping_falls_back_to_typed_content(tiny_llama):
    _, tok = tiny_llama
    tok = type(tok)(tokenizer_object=tok._tokenizer, eos_token=tok.eos_token, pad_token=tok.pad_token)
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}"
        "{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    )
    before, after = _wrap_ids(tok, "")
    assert tok.decode(before).endswith("<|im_start|>user\n") and tok.decode(after) == "<|im_end|>\n"


def test_chunks_of_a_tokenizer_without_chat_template_start_like_plain_text(tiny_llama):
    """A pre-trained encoder (Gemma-3-270M: no chat template) reads each chunk as its tokenizer reads plain text:
    with the BOS it adds (Gemma's loss on prose is 2.0 with it, 5.3 without); none when it adds none."""
    from tokenizers import processors

    _, chat = tiny_llama
    tok = type(chat)(tokenizer_object=chat._tokenizer, eos_token=chat.eos_token, pad_token=chat.pad_token)
    assert (
        not tok.chat_template and tok("a b")["input_ids"] == tok("a b", add_special_tokens=False)["input_ids"]
    )
    plain = encode_documents(tok, ["The sky is blue.", "a b"], chunk_length=3, system="")
    assert _wrap_ids(tok, "") == ([], [])
    bos = chat.convert_tokens_to_ids("<|im_start|>")
    with_bos = type(chat)(tokenizer_object=chat._tokenizer.__class__.from_str(chat._tokenizer.to_str()),
                          bos_token="<|im_start|>", eos_token=chat.eos_token, pad_token=chat.pad_token)  # fmt: skip
    with_bos._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", bos)]
    )
    assert _wrap_ids(with_bos, "") == ([bos], [])
    batch = encode_documents(with_bos, ["The sky is blue.", "a b"], chunk_length=3, system="")
    for row, mask, ref, ref_mask in zip(
        batch["ctx_input_ids"],
        batch["ctx_attention_mask"],
        plain["ctx_input_ids"],
        plain["ctx_attention_mask"],
    ):
        ids, ref_ids = row[mask.bool()].tolist(), ref[ref_mask.bool()].tolist()
        assert ids == [bos, *ref_ids]
    assert torch.equal(batch["ctx_doc_index"], plain["ctx_doc_index"])


def test_context_ids_from_another_tokenizer_fail_clearly(tiny_llama_dir, tmp_path):
    from lora_hyper.modules.d2l import DocToLoRAModule

    vlm = save_tiny_vlm(tmp_path / "vlm", "gemma3")
    module = DocToLoRAModule(str(tiny_llama_dir), lora={"rank": 2},
                             perceiver={"latent_dim": 16, "n_latents": 2, "n_blocks": 1},
                             encoder={"model": str(vlm), "layer_map": "nearest"})  # fmt: skip
    module.configure_model()
    assert module.context_encoder.layer_ids == [0, 2]  # 3 encoder layers -> 2 target layers
    assert module.encoder_tokenizer is not module.tokenizer
    with pytest.raises(InputError, match="past the encoder's vocabulary .* set its encoder_model"):
        module.check_context_ids(torch.tensor([[5, 10_000]]))
    module.check_context_ids(torch.tensor([[5, 10]]))
    assert module._ctx_ids_checked
