"""Ollama Modelfiles (biomedquant.quantization.ollama_modelfile): each chat family's template is
translated and parses back; an unknown template is refused, not guessed; a GGUF artifact carries
one."""

from __future__ import annotations

import pytest

from biomedquant.inference.prompting import shipped_chat_template
from biomedquant.quantization.ollama_modelfile import (
    FAMILIES,
    chat_family,
    modelfile_text,
    parse_modelfile,
)
from biomedquant.study.rehearsal.tiny_models import (
    LLAMA3_TEMPLATE,
    MISTRAL_TEMPLATE,
    QWEN2_TEMPLATE,
)

TEMPLATES = {
    "llama3": LLAMA3_TEMPLATE,
    "chatml": QWEN2_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
    "gemma": shipped_chat_template("google/gemma-2-9b-it"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_s_modelfile_parses_back_with_its_template_and_stops(family):
    template = TEMPLATES[family]
    assert chat_family(template) == family
    parsed = parse_modelfile(modelfile_text(template))
    assert parsed["from"] == "./model.gguf"
    assert parsed["template"] == FAMILIES[family][1]
    assert "{{ .Prompt }}" in parsed["template"] and "{{ .Response }}" in parsed["template"]
    assert tuple(parsed["parameters"]["stop"]) == FAMILIES[family][2]
    assert parsed["parameters"]["temperature"] == ["0"]


def test_an_unknown_template_and_a_bad_modelfile_are_refused():
    with pytest.raises(ValueError, match="no Ollama template"):
        chat_family("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ValueError, match="not a Modelfile command"):
        parse_modelfile("FROM ./x.gguf\nTEMPLTE {{ .Prompt }}\n")


def test_a_gguf_artifact_carries_a_modelfile(tiny_fetched, tmp_path):
    pytest.importorskip("llama_cpp")
    from biomedquant.quantization import quantize_model

    quantize_model(tiny_fetched, tmp_path / "q8", {"kind": "gguf", "type": "Q8_0"}, seed=0)
    parsed = parse_modelfile((tmp_path / "q8" / "Modelfile").read_text())
    assert parsed["from"] == "./model.gguf" and (tmp_path / "q8" / "model.gguf").is_file()
    assert "<|im_end|>" in parsed["parameters"]["stop"]  # the tiny model speaks ChatML
