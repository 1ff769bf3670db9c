"""What every benchmark reader produces: one :class:`BenchItem` per question, multiple-choice
options written into the question the way V* Bench writes them.

A module of its own so that the benchmark (:mod:`focus_ros.eval.bench`) and the readers
(:mod:`focus_ros.eval.vstar`, :mod:`focus_ros.eval.benchmarks`) share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BenchItem:
    """One question: image path, text, gold answer, type, gold boxes; options for multiple choice."""

    image: str
    question: str
    answer: str
    type: str
    boxes: list[list[float]] = field(default_factory=list)
    options: list[str] = field(default_factory=list)  # in the order shown (multiple choice)
    id: str = ""

    @property
    def answer_letter(self) -> str:
        return chr(ord("A") + self.options.index(self.answer)) if self.answer in self.options else ""


def format_question(question: str, options: list[str]) -> str:
    """``question`` followed by one ``(A) option`` line per option."""
    return question.strip() + "".join(f"\n({chr(ord('A') + i)}) {o}" for i, o in enumerate(options))


__all__ = ["BenchItem", "format_question"]
