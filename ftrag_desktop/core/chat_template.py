"""Chat templates for imported models: a GGUF's Jinja template turned into Ollama's Go template.

GGUF files carry the Hugging Face chat template (`tokenizer.chat_template`, Jinja); Ollama wants
a Go `text/template` over `.Messages`.  A general Jinja-to-Go translation does not exist, so
this recognises the prompt formats that nearly every chat model uses by their marker tokens
and writes Ollama's equivalent template, with the stop token that ends a turn.  A template
that already is a Go template passes through.  Anything else returns None: the caller then
inherits the base model's template and says so, rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoTemplate:
    """A template Ollama can use, the format it was recognised as, and its stop tokens."""

    template: str
    format: str  # "chatml", "llama3", "gemma", "phi3", "zephyr", "mistral", or "go"
    stop: tuple[str, ...]


_CHATML = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
_LLAMA3 = (
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>\n"
    "{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
# Gemma has no system role: system text goes in as a user turn, as Gemma's own template does.
_GEMMA = (
    '{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}user'
    "{{ end }}\n"
    "{{ .Content }}<end_of_turn>\n"
    "{{ end }}<start_of_turn>model\n"
)
_PHI3 = "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}<|end|>\n{{ end }}<|assistant|>\n"
_ZEPHYR = "{{- range .Messages }}<|{{ .Role }}|>\n{{ .Content }}</s>\n{{ end }}<|assistant|>\n"
_MISTRAL = (
    '{{- range .Messages }}{{ if eq .Role "assistant" }}{{ .Content }}</s>'
    "{{ else }}[INST] {{ .Content }} [/INST]{{ end }}{{ end }}"
)

# (format, markers that must all appear, template, stop tokens); the first match wins.
_FORMATS: tuple[tuple[str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("chatml", ("<|im_start|>", "<|im_end|>"), _CHATML, ("<|im_end|>",)),
    ("llama3", ("<|start_header_id|>", "<|eot_id|>"), _LLAMA3, ("<|eot_id|>",)),
    ("gemma", ("<start_of_turn>", "<end_of_turn>"), _GEMMA, ("<end_of_turn>",)),
    ("phi3", ("<|user|>", "<|end|>", "<|assistant|>"), _PHI3, ("<|end|>",)),
    ("zephyr", ("<|user|>", "<|assistant|>", "</s>"), _ZEPHYR, ("</s>",)),
    ("mistral", ("[INST]", "[/INST]"), _MISTRAL, ("[INST]", "[/INST]")),
)


_GO_FIELDS = ("Messages", "Prompt", "System", "Content", "Role", "Response")


def is_go_template(text: str) -> bool:
    """Ollama syntax ({{ .Messages }}, {{ .Prompt }}) and no Jinja statements."""
    if "{%" in text:
        return False
    return any(f"{{{{{ws}.{field}" in text for ws in (" ", "- ", "") for field in _GO_FIELDS)


def to_go_template(chat_template: str) -> GoTemplate | None:
    """Ollama's template for a GGUF chat template, or None when the format is not known."""
    text = chat_template.strip()
    if not text:
        return None
    if is_go_template(text):
        return GoTemplate(chat_template, "go", ())
    for name, markers, template, stop in _FORMATS:
        if all(m in text for m in markers):
            return GoTemplate(template, name, stop)
    return None
