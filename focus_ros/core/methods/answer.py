"""The answer step every method ends with: free text, or the likeliest option of a multiple choice.

Multiple-choice questions carry their options in the text, as V* Bench writes them:
``"What is the color of the bag? (A) red (B) blue (C) black (D) white"`` (or one ``A. red`` per
line). :func:`parse_options` splits such a question into its stem and options; the model is asked
the stem and each option is scored by the mean log-likelihood of its tokens as the answer (V* Bench's
own protocol: lowest mean cross-entropy wins). Scoring an option costs one forward pass over its
tokens on a fork of the question's KV cache; a one-token option costs nothing beyond the question,
its log-probability is in the question's last logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ..models.base import Extension, Meter, VLMAdapter

_INSTRUCTION = re.compile(r"\s*answer with the option'?s letter from the given choices directly\.?\s*$", re.IGNORECASE)
_PAREN = re.compile(r"\(([A-Z])\)\s*")
_LINE = re.compile(r"^\s*([A-Z])[.)]\s+(.+?)\s*$")


@dataclass
class Choices:
    """A multiple-choice question: what to ask, the options, their letters."""

    stem: str
    options: list[str] = field(default_factory=list)

    @property
    def letters(self) -> list[str]:
        return [chr(ord("A") + i) for i in range(len(self.options))]


def _consecutive(letters: list[str]) -> bool:
    return len(letters) >= 2 and letters == [chr(ord("A") + i) for i in range(len(letters))]


def parse_options(question: str) -> Choices:
    """Split a multiple-choice question into stem and options; no options: ``Choices(question)``."""
    q = _INSTRUCTION.sub("", question.strip()).strip()
    marks = list(_PAREN.finditer(q))
    if _consecutive([m.group(1) for m in marks]):
        ends = [m.start() for m in marks[1:]] + [len(q)]
        options = [q[m.end() : e].strip().rstrip(",;").strip() for m, e in zip(marks, ends)]
        stem = q[: marks[0].start()].strip()
        if stem and all(options):
            return Choices(stem, options)
    lines = q.splitlines()
    found = [(i, _LINE.match(line)) for i, line in enumerate(lines)]
    opts = [(i, m) for i, m in found if m]
    if opts and _consecutive([m.group(1) for _, m in opts]):
        first = opts[0][0]
        stem = "\n".join(lines[:first]).strip()
        if stem:
            return Choices(stem, [m.group(2) for _, m in opts])
    return Choices(question.strip())


def option_text(ext: Extension, option: str) -> str:
    """The option as the assistant would start it: after ``ASSISTANT:`` with a space, after a newline without."""
    return option if not ext.text or ext.text[-1].isspace() else " " + option


@torch.inference_mode()
def option_scores(adapter: VLMAdapter, ext: Extension, options: list[str], meter: Meter | None = None) -> list[float]:
    """Mean log-probability of each option's tokens as the answer after ``ext`` (never modified)."""
    first = torch.log_softmax(ext.logits.float(), dim=-1)
    scores = []
    for option in options:
        text = option_text(ext, option)
        ids = adapter.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            scores.append(float("-inf"))
            continue
        if len(ids) == 1:
            scores.append(float(first[ids[0]]))
            continue
        cont = adapter.extend(ext, text, meter, logits_to_keep=0)  # every token's logits
        ids = cont.input_ids[0].tolist()
        logp = torch.log_softmax(cont.outputs.logits[0, :-1].float(), dim=-1)
        rest = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
        scores.append(float((first[ids[0]] + rest.sum()) / len(ids)))
    return scores


def respond(
    adapter: VLMAdapter, ext: Extension, choices: Choices, max_new_tokens: int, meter: Meter | None = None
) -> tuple[str, str]:
    """The answer after an answer prompt: greedy text, or the best option; and its letter ("" if none)."""
    if not choices.options:
        return adapter.decode(ext, max_new_tokens, meter), ""
    scores = option_scores(adapter, ext, choices.options, meter)
    best = max(range(len(scores)), key=lambda i: scores[i])
    return choices.options[best], choices.letters[best]


__all__ = ["Choices", "parse_options", "option_scores", "respond"]
