"""FOCUS step 1: which objects does a question need? Prompt building and answer parsing.

The model is asked, text only, with in-context examples (paper, section 3.1). Its answer
"So I need the information about the following objects: A and B" is parsed here; a target
phrased "all X" (every instance matters, e.g. counting) is type 2, anything else type 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TYPE_SINGLE = 1
TYPE_ALL = 2

ANSWER_LEAD = "So I need the information about the following objects:"
QUERY = "If you want to answer the question, which objects' information do you need?"

# In-context examples: one target, two targets, an "all" target, as in the paper's prompt.
FEW_SHOT = (
    ("What is the color of the woman's bag?", "woman's bag"),
    ("Is the dog on the left or right side of the car?", "dog and car"),
    ("How many birds are there in the image?", "all birds"),
)

_ARTICLES = re.compile(r"^(?:the|a|an|any|some)\s+", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b|\bor\b)\s*", re.IGNORECASE)
_ALL = re.compile(r"^(?:all|every|each)\s+(?:the\s+|of\s+the\s+)?", re.IGNORECASE)
_NONE = {"", "none", "nothing", "no objects", "no object", "n/a"}
_MAX_WORDS = 8  # a target is a short noun phrase; longer output is the model rambling
_PHRASE_OK = re.compile(r"^[\w][\w' -]*$")


@dataclass(frozen=True)
class Target:
    """One object the question needs, and whether every instance of it matters."""

    phrase: str
    kind: int = TYPE_SINGLE

    @property
    def existence_phrase(self) -> str:
        """The phrase for "Is there a {phrase} in the image?": singular for an "all X" target, so
        the existence prompt and the relevance read from it stay grammatical ("a red object")."""
        return singular(self.phrase) if self.kind == TYPE_ALL else self.phrase


# Plurals that the suffix rules below would get wrong.
_IRREGULAR = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "mice": "mouse",
    "geese": "goose",
    "feet": "foot",
    "teeth": "tooth",
    "knives": "knife",
    "leaves": "leaf",
    "shelves": "shelf",
    "wolves": "wolf",
    "sheep": "sheep",
    "fish": "fish",
}


def singular(phrase: str) -> str:
    """The phrase with its last word made singular by English suffix rules ("red objects" ->
    "red object", "boxes" -> "box", "berries" -> "berry"); words that are not plural stay."""
    words = phrase.split(" ")
    last = words[-1]
    low = last.lower()
    if low in _IRREGULAR:
        words[-1] = _IRREGULAR[low]
    elif len(low) > 3 and low.endswith("ies"):
        words[-1] = last[:-3] + "y"
    elif low.endswith(("sses", "xes", "zes", "ches", "shes")):
        words[-1] = last[:-2]
    elif len(low) > 2 and low.endswith("s") and not low.endswith(("ss", "us", "is")):
        words[-1] = last[:-1]
    return " ".join(words)


def extraction_prompt(question: str) -> str:
    """Few-shot text prompt whose continuation lists the question's targets."""
    return "".join(extraction_prompt_parts(question))


def extraction_prompt_parts(question: str) -> tuple[str, str]:
    """The extraction prompt in two: the in-context examples, the same text for every question
    (so a model can prefill them once), and the question's own part. The split falls right after
    a blank line, where tokenizers start a new token (the caller still checks that tokenizing the
    two apart gives the ids of the whole)."""
    shared = "".join(f"Question: {q}\n{QUERY}\n{ANSWER_LEAD} {a}\n\n" for q, a in FEW_SHOT)
    return shared, f"Question: {question.strip()}\n{QUERY}\n{ANSWER_LEAD}"


def _clean(phrase: str) -> str:
    phrase = phrase.strip().strip(".?!:\"'").strip()
    while True:
        stripped = _ARTICLES.sub("", phrase)
        if stripped == phrase:
            return phrase
        phrase = stripped


def parse_targets(text: str) -> list[Target]:
    """Parse the model's continuation (or a full "So I need ..." sentence) into targets.

    Only the first line counts (the model may go on with another example). "all X" becomes a
    type-2 target ``X``; duplicates are dropped; "none" or empty output gives ``[]``.
    """
    if ANSWER_LEAD in text:
        text = text.split(ANSWER_LEAD, 1)[1]
    line = text.strip().split("\n", 1)[0]
    line = line.split("Question:", 1)[0]
    targets: list[Target] = []
    seen: set[str] = set()
    for raw in _SPLIT.split(line):
        raw = _clean(raw)
        kind = TYPE_SINGLE
        if _ALL.match(raw):
            kind, raw = TYPE_ALL, _clean(_ALL.sub("", raw))
        if raw.lower() in _NONE or raw.lower() in seen:
            continue
        if not _PHRASE_OK.match(raw) or len(raw.split()) > _MAX_WORDS or not raw.isprintable():
            continue  # not a noun phrase (control characters, symbols, a whole sentence)
        seen.add(raw.lower())
        targets.append(Target(raw, kind))
    return targets


# Question patterns for the rule-based extractor, most specific first.
_RULES = (
    (
        re.compile(r"^how many (.+?)(?: are there| can you see| do you see| are in| in the image|\?|$)", re.IGNORECASE),
        TYPE_ALL,
    ),
    (
        re.compile(
            r"^is (?:the )?(.+?) (?:to the |on the )?(?:left|right)(?: side)? or (?:the )?(?:left|right)"
            r"(?: side)? of (?:the )?(.+?)\??$",
            re.IGNORECASE,
        ),
        TYPE_SINGLE,
    ),
    (
        re.compile(r"^(?:is|are) there (?:a |an |any )?(.+?)(?: in the image| in the picture)?\??$", re.IGNORECASE),
        TYPE_SINGLE,
    ),
    (
        re.compile(
            r"^what (?:colou?r|shape|size|kind|type|material|brand|number|text)\b.*? (?:is|are) "
            r"(?:the |this |that )?(.+?)\??$",
            re.IGNORECASE,
        ),
        TYPE_SINGLE,
    ),
    (
        re.compile(r"\b(?:the|a|an) ([\w' -]+?)(?:\s+(?:in|on|at|of|to|near|with|is|are)\b|[?.,]|$)", re.IGNORECASE),
        TYPE_SINGLE,
    ),
)


# _RULES from this index on read one object each: a list of objects is read before them (the
# counting and left-or-right rules ahead of it know their own structure).
_FIRST_SINGLE_OBJECT_RULE = 2
# A listed noun phrase: an article, then words up to a preposition or verb that ends it.
_LISTED = re.compile(r"^(?:the|a|an)\s+([\w' -]+?)(?:\s+(?:in|on|at|of|to|near|with|is|are)\b.*)?$", re.IGNORECASE)
_LIST_SEP = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+", re.IGNORECASE)
# The first item: the last article of the question's lead and what follows, unless a preposition
# comes right before it ("the colour of the cup and ...": which object is listed is unclear).
_LAST_ARTICLE = re.compile(r"^(?:(.*\s))?((?:the|a|an)\s+.+)$", re.IGNORECASE)
_PREPOSITION = re.compile(r"\b(?:in|on|at|of|to|near|with|from|under|behind|by)\s*$", re.IGNORECASE)


def _listed_targets(question: str) -> list[Target]:
    """The phrases of a list of article-led objects ("Where are the cup, the plate and a fork?"):
    two or more, every item after the first starting with an article; [] for anything else, so a
    question that is no such list ("Is the dog big and brown?") goes to the other rules."""
    parts = _LIST_SEP.split(question.strip().rstrip("?.!").strip())
    if len(parts) < 2:
        return []
    lead = _LAST_ARTICLE.match(parts[0])  # the first item follows the question's own words
    if not lead or _PREPOSITION.search(lead.group(1) or ""):
        return []
    items = [lead.group(2)] + parts[1:]
    out: list[Target] = []
    for item in items:
        m = _LISTED.match(item.strip())
        if not m:
            return []
        phrase = _clean(m.group(1))
        if phrase and phrase.lower() not in _NONE and phrase.lower() not in {t.phrase.lower() for t in out}:
            out.append(Target(phrase))
    return out if len(out) >= 2 else []


def targets_from_question(question: str) -> list[Target]:
    """Rule-based targets straight from the question: the fallback when the model's list is empty,
    and the ``search.target_extraction: rule`` mode. A list of objects gives one target each."""
    q = question.strip()
    for i, (pattern, kind) in enumerate(_RULES):
        if i == _FIRST_SINGLE_OBJECT_RULE:
            listed = _listed_targets(q)
            if listed:
                return listed
        m = pattern.search(q)
        if m:
            out = []
            for g in m.groups():
                phrase = _clean(g or "")
                if phrase and phrase.lower() not in _NONE:
                    out.append(Target(phrase, kind))
            if out:
                return out
    return []


def for_question_type(targets: list[Target], qtype: int) -> list[Target]:
    """Targets as the question's type asks for them: when the question counts ("how many ...")
    but the model's list marked no target "all X", every target needs every instance."""
    if qtype == TYPE_ALL and not any(t.kind == TYPE_ALL for t in targets):
        return [Target(t.phrase, TYPE_ALL) for t in targets]
    return targets


def question_type(question: str, targets: list[Target]) -> int:
    """Type 2 when any target needs every instance, or the question counts."""
    if any(t.kind == TYPE_ALL for t in targets) or re.match(r"^\s*(how many|count)\b", question, re.I):
        return TYPE_ALL
    return TYPE_SINGLE
