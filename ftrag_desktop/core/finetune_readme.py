"""The README.md of a fine-tuning export: what is in it and how each tool consumes it.

The instructions follow the tools' own documentation, cited at the end of the README (read
when this was written; tools change, so the links are the authority).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ftrag_desktop.core.answer import NO_ANSWER
from ftrag_desktop.core.finetune_formats import (
    METADATA_FILE,
    OPENAI_MIN_EXAMPLES,
    TRAIN_FILE,
    VALID_FILE,
    Format,
)

if TYPE_CHECKING:
    from ftrag_desktop.core.finetune_export import ExportOptions, Preview, SplitPreview

SOURCES = """\
## Sources for these instructions

- TRL dataset formats ("conversational language modeling": `messages`):
  <https://huggingface.co/docs/trl/dataset_formats>; SFT trainer:
  <https://huggingface.co/docs/trl/sft_trainer>
- Unsloth datasets guide (trains through TRL's `SFTTrainer`):
  <https://unsloth.ai/docs/jp/meru/fine-tuning-llms-guide/datasets-guide.md>
- Axolotl `chat_template` datasets (`field_messages` defaults to `messages`; trains the
  assistant turns by default): <https://github.com/axolotl-ai-cloud/axolotl/blob/main/docs/dataset-formats/conversation.qmd>;
  local JSON files (`ds_type: json`):
  <https://github.com/axolotl-ai-cloud/axolotl/blob/main/docs/dataset_loading.qmd>
- MLX-LM LoRA (`--data` folder holding `train.jsonl` and `valid.jsonl`, `chat` lines,
  `--mask-prompt`, `mlx_lm.fuse --export-gguf`):
  <https://github.com/ml-explore/mlx-lm/blob/main/mlx_lm/LORA.md>
- OpenAI fine-tuning data checks (keys, roles, an assistant message in every example):
  <https://github.com/openai/openai-cookbook/blob/main/examples/Chat_finetuning_data_prep.ipynb>;
  creating a job with `training_file` and `validation_file`:
  <https://platform.openai.com/docs/api-reference/fine-tuning/create>; at least
  10 examples: <https://community.openai.com/t/token-limit-vs-minimum-number-of-examples-in-jsonl/762836>
- RAFT, retrieval-augmented fine-tuning (Zhang et al., 2024): <https://arxiv.org/abs/2403.10131>
"""


def _row(p: SplitPreview) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in p.kinds.items()) or "none"
    return (
        f"| `{p.file}` | {p.examples} | {p.bytes:,} | {p.approx_tokens:,} | "
        f"{p.max_example_tokens:,} | {kinds} |"
    )


def _summary(result: Preview, options: ExportOptions, inputs: Sequence[str]) -> str:
    sets = "\n".join(f"- `{i}`" for i in inputs) or "- (none recorded)"
    warnings = "\n".join(f"- {w}" for w in result.warnings) or "- none"
    skipped = ", ".join(f"{n} ({why})" for why, n in result.skipped.items()) or "none"
    split = (
        "by source document: no document has questions or passages on both sides"
        if result.leak_free
        else "by question (all questions come from one document)"
    )
    return f"""\
# Fine-tuning data exported by ftrag

Made for **{result.tool}** (format `{result.format}`); every file is chat-messages JSONL, one
`{{"messages": [system, user, assistant]}}` example per line, so the other tools below read it
too.  Built from these evaluation sets:

{sets}

| file | examples | bytes | tokens (approx.) | longest example (tokens) | kinds |
| --- | --- | --- | --- | --- | --- |
{_row(result.train)}
{_row(result.valid)}

Token counts are {result.token_rule}; the model's own tokenizer may count 20-30% more or less.
Use the longest example to choose the training sequence length.

- Kind of examples: `{options.kind.value}`; seed {options.seed}; validation fraction
  {options.val_fraction}; split {split}.
- Duplicate questions dropped: {result.duplicates}.  Questions skipped: {skipped}.
- `{METADATA_FILE}` maps each line of the two files back to its question id, kind, source
  document and the number of the cited source.  No tool needs it.

Warnings:

{warnings}

## What the examples teach

- `qa`: the question alone, as the app asks a model with RAG off, and the reference answer.
- `raft`: the question with numbered sources quoted exactly as the app quotes them at RAG time
  (same system prompt, same `<<<`/`>>>` quoting), the source that holds the answer among
  {options.distractors} distractor passages, answered with the reference answer citing that
  source as `[n]`.  {round(options.no_oracle_fraction * 100)}% of them get distractors only
  and are answered with {
        "the abstention"
        if options.no_oracle_answer == "abstain"
        else "the reference answer, uncited (as in the RAFT paper)"
    }.
- Questions the documents cannot answer get the app's abstention: `{NO_ANSWER}`

A model fine-tuned on `raft` examples learns the exact prompt format the app will send it, so
it is the kind to use for a model that will also be used with RAG.
"""


def _tools(folder: str) -> dict[Format, str]:
    """One README section per tool, keyed by the format made for it."""
    trl = f"""\
## Unsloth / TRL (`SFTTrainer`)

```python
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer

data = load_dataset("json", data_files={{"train": "{folder}/{TRAIN_FILE}",
                                         "validation": "{folder}/{VALID_FILE}"}})
trainer = SFTTrainer(
    model="HuggingFaceTB/SmolLM2-135M-Instruct",  # or the model Unsloth's FastLanguageModel loads
    train_dataset=data["train"],
    eval_dataset=data["validation"],
    args=SFTConfig(output_dir="out"),  # assistant_only_loss=True if the chat template allows
)
trainer.train()
```

The trainer applies the model's chat template to `messages` itself.  With Unsloth, load the
model with `FastLanguageModel.from_pretrained(...)` and hand it and its tokenizer to the same
`SFTTrainer`; save a merged GGUF with `model.save_pretrained_gguf(...)`.
"""
    axolotl = f"""\
## Axolotl

```yaml
datasets:
  - path: {folder}/{TRAIN_FILE}
    ds_type: json
    type: chat_template
    field_messages: messages
    roles_to_train: ["assistant"]
test_datasets:
  - path: {folder}/{VALID_FILE}
    ds_type: json
    split: train
    type: chat_template
    field_messages: messages
```

Add these to your config (model, adapter, sequence length) and run `axolotl train config.yml`.
"""
    mlx = f"""\
## MLX-LM

```shell
mlx_lm.lora --model <hugging-face-model> --train --data {folder} --mask-prompt --iters 600
mlx_lm.fuse --model <hugging-face-model> --export-gguf   # fused_model/ggml-model-f16.gguf
```

`--data` is this folder: MLX reads `{TRAIN_FILE}` and `{VALID_FILE}` from it by those names.
`--mask-prompt` trains on the last message (the answer) only.
"""
    openai = f"""\
## OpenAI fine-tuning

```python
from openai import OpenAI

client = OpenAI()
train = client.files.create(file=open("{folder}/{TRAIN_FILE}", "rb"), purpose="fine-tune")
valid = client.files.create(file=open("{folder}/{VALID_FILE}", "rb"), purpose="fine-tune")
client.fine_tuning.jobs.create(training_file=train.id, validation_file=valid.id,
                               model="gpt-4o-mini-2024-07-18")
```

This uploads the text of your documents to OpenAI, and the model stays there: it cannot be
imported into Ollama.  A training file needs at least {OPENAI_MIN_EXAMPLES} examples.
"""
    return {Format.CHAT: trl, Format.AXOLOTL: axolotl, Format.MLX: mlx, Format.OPENAI: openai}


CLOSE_THE_LOOP = """\
## Close the loop

Import the fine-tuned GGUF (merge a LoRA adapter into its base first) and measure it against
the base model, with and without RAG:

```shell
ftrag models import-gguf fused_model/ggml-model-f16.gguf --name my-finetune
ftrag eval run ...
```
"""


def readme_text(result: Preview, options: ExportOptions, inputs: Sequence[str]) -> str:
    """The README; the section of the tool the export was made for comes first."""
    sections = _tools(".")  # the commands run from inside the export folder
    ordered = [sections[options.format]] + [
        text for fmt, text in sections.items() if fmt is not options.format
    ]
    return "\n".join([_summary(result, options, inputs), *ordered, CLOSE_THE_LOOP, SOURCES])
