"""Tiny randomly initialised stand-ins for the study's model families.

Each family (the ``model_type`` of a Hugging Face ``config.json``) is a row of facts: the
transformers config class, the special tokens and the chat format of the study's models of that
family. A stand-in has the family's architecture (Qwen2's q/k/v biases, Llama 3.1's rope
scaling, Gemma 2's extra norms and soft-capping and its template without a system role), a
byte-level BPE tokenizer trained on the demo benchmark texts, and random weights: it writes
deterministic nonsense, which is all a rehearsal of the plumbing needs. Widths are multiples of
128 so that the study's group size 128 is valid.

The chat formats are each family's published prompt format, written here as small templates
(Gemma 2's is the shipped copy of its published template, see
:func:`biomedquant.inference.prompting.shipped_chat_template`); a stand-in is not its checkpoint's
tokenizer, only its format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomedquant.common.registry import Registry

# Llama 3.x: header tokens around each role, <|eot_id|> ends a turn; 3.1 opens the system
# turn with its knowledge-cutoff lines.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{% if message['role'] == 'system' %}"
    "{{ 'Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n' }}"
    "{% endif %}"
    "{{ message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# Qwen2.5: ChatML, with Qwen's default system turn when the prompt has none.
QWEN2_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud."
    " You are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Mistral v0.3: [INST] turns; a system message is prepended to the last user turn.
MISTRAL_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in turns %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.last and system %}"
    "{{ '[INST] ' + system + '\n\n' + message['content'] + '[/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + '[/INST]' }}{% endif %}"
    "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class TinyFamily:
    """What a stand-in of one model family is made of."""

    model_type: str
    description: str
    config_class: str  # transformers class name
    specials: tuple[str, ...]  # special tokens, the tokenizer's first ids
    bos: str | None
    eos: str
    pad: str
    template: Callable[[str], str]  # model id -> its chat template
    # extra keys of the transformers config (the family's distinguishing features)
    config: dict[str, Any] = field(default_factory=dict)
    head_dim: int = 32


def _fixed(text: str) -> Callable[[str], str]:
    return lambda model_id: text


def _gemma_template(model_id: str) -> str:
    from biomedquant.inference.prompting import shipped_chat_template

    return shipped_chat_template("google/gemma-2-9b-it") or ""


FAMILIES: Registry[TinyFamily] = Registry(
    "model family",
    (
        (f.model_type, f)
        for f in (
            TinyFamily(
                "llama",
                "Llama 3.x (and its fine-tunes): llama3 rope scaling, untied head",
                "LlamaConfig",
                (
                    "<|begin_of_text|>",
                    "<|end_of_text|>",
                    "<|start_header_id|>",
                    "<|end_header_id|>",
                    "<|eot_id|>",
                    "<unk>",
                ),
                bos="<|begin_of_text|>",
                eos="<|eot_id|>",
                pad="<|end_of_text|>",
                template=_fixed(LLAMA3_TEMPLATE),
                config={
                    "rope_scaling": {
                        "rope_type": "llama3",
                        "factor": 8.0,
                        "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 1024,
                    },
                    "rope_theta": 500000.0,
                    "tie_word_embeddings": False,
                },
            ),
            TinyFamily(
                "qwen2",
                "Qwen2.5: q/k/v biases, ChatML",
                "Qwen2Config",
                ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"),
                bos=None,
                eos="<|im_end|>",
                pad="<|endoftext|>",
                template=_fixed(QWEN2_TEMPLATE),
                config={"rope_theta": 1000000.0, "tie_word_embeddings": False},
            ),
            TinyFamily(
                "mistral",
                "Mistral v0.3 (and BioMistral): [INST] turns",
                "MistralConfig",
                ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
                bos="<s>",
                eos="</s>",
                pad="<unk>",
                template=_fixed(MISTRAL_TEMPLATE),
                config={"rope_theta": 1000000.0, "tie_word_embeddings": False},
            ),
            TinyFamily(
                "gemma2",
                "Gemma 2: pre/post norms, soft-capping, no system role",
                "Gemma2Config",
                ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
                bos="<bos>",
                eos="<eos>",
                pad="<pad>",
                template=_gemma_template,
                config={
                    "query_pre_attn_scalar": 32,
                    "attn_logit_softcapping": 50.0,
                    "final_logit_softcapping": 30.0,
                    "sliding_window": 512,
                    "hidden_activation": "gelu_pytorch_tanh",
                    "tie_word_embeddings": True,
                },
            ),
        )
    ),
)


def demo_corpus() -> list[str]:
    """Text of every demo benchmark item: what the stand-ins' tokenizer is trained on, so
    that it covers what the rehearsal feeds it."""
    from biomedquant.datasets.download import demo_root
    from biomedquant.datasets.readers import read_source
    from biomedquant.datasets.registry import DATASETS

    texts = []
    for spec in DATASETS.values():
        for src in spec.files.values():
            path = demo_root() / src.path
            if path.exists():
                texts.extend(json.dumps(r) for r in read_source(path, src.reader))
    return texts


def train_tokenizer(
    specials: Sequence[str],
    template: str,
    *,
    bos: str | None,
    eos: str,
    pad: str,
    vocab_size: int,
    unk: str = "<unk>",
) -> Any:
    """A byte-level BPE tokenizer trained on the demo texts and ``template`` (so the chat
    format's own words are tokens), with ``specials`` as its first ids and ``template`` as its
    chat template: deterministic for the same arguments."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(demo_corpus() + [template], trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=unk, bos_token=bos, eos_token=eos, pad_token=pad
    )
    hf_tok.chat_template = template
    return hf_tok


def spread_weights(model: Any, seed: int, scale: float = 2.0) -> None:
    """Redraw ``model``'s matrices from a seeded normal wide enough that it answers.

    transformers initializes a model for training: standard deviation 0.02, under which a
    tiny random model's greedy answer is the same newline for every prompt, which a test
    cannot tell from a stale or swapped output. Embeddings with standard deviation
    ``scale`` and each linear layer with ``scale / sqrt(fan_in)`` make the next token depend
    on the prompt: most prompts then get their own, still nonsensical, answer. Norms and
    biases keep their initial values.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() != 2:
                continue
            std = scale if "embed" in name else scale / param.shape[1] ** 0.5
            fresh = torch.empty(param.shape, dtype=torch.float32).normal_(
                0, std, generator=generator
            )
            param.copy_(fresh.to(param.dtype))


def build_tiny_model(
    folder: Path,
    family: TinyFamily,
    model_id: str,
    *,
    dtype: str = "bfloat16",
    hidden: int = 128,
    layers: int = 2,
    vocab_size: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a stand-in of ``family`` (for study model ``model_id``) into ``folder``:
    safetensors weights in ``dtype``, config, tokenizer with the family's chat template."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    template = family.template(model_id)
    hf_tok = train_tokenizer(
        family.specials,
        template,
        bos=family.bos,
        eos=family.eos,
        pad=family.pad,
        vocab_size=vocab_size,
    )
    config_class = getattr(transformers, family.config_class)
    heads = hidden // family.head_dim
    config = config_class(
        vocab_size=len(hf_tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=family.head_dim,
        max_position_embeddings=4096,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        torch_dtype=dtype,
        **family.config,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    hf_tok.save_pretrained(folder)
    return folder
