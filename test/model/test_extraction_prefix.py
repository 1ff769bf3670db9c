"""The few-shot target-extraction prompt: its in-context examples are prefilled once per model and
every question extends a fork of that cache with its own part, with the logits and the targets of
one fresh prefill of the whole prompt (the embedded model and the three family miniatures)."""

from pathlib import Path

import pytest
import torch

from focus_ros.core.config import EMBEDDED_MODEL, ModelConfig, build_configs
from focus_ros.core.models import Meter, load_adapter
from focus_ros.core.pipeline import FocusPipeline
from focus_ros.core.targets import ANSWER_LEAD, extraction_prompt, parse_targets, targets_from_question

REPO = Path(__file__).resolve().parents[2]
MODELS = ("embedded", "llava", "llava_onevision", "qwen2_5_vl")
QUESTIONS = ("What shape is the red object?", "Where is the red object?", "How many blue objects are there?")
_ADAPTERS = {}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_path(root, name):
    return str(REPO / EMBEDDED_MODEL) if name == "embedded" else str(root / name)


def adapter_for(root, name):
    if name not in _ADAPTERS:
        _ADAPTERS[name] = load_adapter(ModelConfig(path=model_path(root, name), device="cpu", local_files_only=True))
    return _ADAPTERS[name]


def pipeline(root, name, adapter=None):
    _, search = build_configs({"model.path": model_path(root, name), "search.target_extraction": "model"})
    return FocusPipeline(adapter or adapter_for(root, name), search)


def ids(adapter, text):
    return adapter.tokenizer(text, add_special_tokens=False)["input_ids"]


def whole_prompt(adapter, question):
    """The extraction prompt as one text, built as before the split."""
    user = extraction_prompt(question).rsplit(f"\n{ANSWER_LEAD}", 1)[0]
    return adapter.text_prompt(user) + ANSWER_LEAD


def fresh_targets(adapter, search, question):
    """Step 1 with one fresh prefill of the whole prompt (the reference)."""
    reply = adapter.decode(adapter.extend(None, whole_prompt(adapter, question)), search.max_target_tokens)
    targets = parse_targets(reply)
    return (targets, "model") if targets else (targets_from_question(question), "question")


@pytest.mark.parametrize("name", MODELS)
def test_the_prompt_splits_after_its_examples_where_tokenizing_apart_gives_the_ids_of_the_whole(miniature_root, name):
    pipe = pipeline(miniature_root, name)
    adapter = pipe.adapter
    heads = set()
    for question in QUESTIONS:
        head, tail = pipe.extraction_split(question)
        assert head + tail == whole_prompt(adapter, question)
        assert head.endswith("\n\n") and tail.startswith(f"Question: {question}")
        assert ids(adapter, head) + ids(adapter, tail) == ids(adapter, head + tail)
        heads.add(head)
    assert len(heads) == 1  # the same head for every question: one cache serves them all


@pytest.mark.parametrize("name", MODELS)
def test_extending_the_kept_prefix_gives_the_logits_and_targets_of_a_fresh_prefill(miniature_root, name):
    pipe = pipeline(miniature_root, name)
    adapter = pipe.adapter
    assert adapter.dtype == torch.float32
    for question in QUESTIONS:  # the first prefills the head, the others reuse it
        ext = pipe.extraction_extension(question)
        fresh = adapter.extend(None, whole_prompt(adapter, question))
        assert ext.end == int(fresh.input_ids.shape[1])
        torch.testing.assert_close(ext.logits, fresh.logits, atol=1e-4, rtol=1e-4)
        assert pipe.extract_targets(question) == fresh_targets(adapter, pipe.search, question)


@pytest.mark.parametrize("name", MODELS)
def test_a_second_question_prefills_only_its_own_part_and_counts_the_reused_pass(miniature_root, name):
    pipe = pipeline(miniature_root, name)
    adapter = pipe.adapter
    first, second = Meter(), Meter()
    pipe.extraction_extension(QUESTIONS[0], first)
    pipe.extraction_extension(QUESTIONS[1], second)
    head, tail = pipe.extraction_split(QUESTIONS[1])
    # the first question pays the head once (its own pass) and its tail
    assert first.forward_passes == 2 and first.reused_passes == 0
    assert first.tokens_prefilled == len(ids(adapter, whole_prompt(adapter, QUESTIONS[0])))
    assert second.forward_passes == 1 and second.reused_passes == 1
    assert second.tokens_prefilled == len(ids(adapter, tail)) < len(ids(adapter, head))


def test_the_kept_prefix_survives_forgetting_frames_but_not_running_out_of_memory(miniature_root):
    pipe = pipeline(miniature_root, "llava")
    pipe.extraction_extension(QUESTIONS[0])
    pipe.clear_cache()  # frames only: the extraction prefix depends on the model alone
    kept = Meter()
    pipe.extraction_extension(QUESTIONS[1], kept)
    assert kept.reused_passes == 1
    pipe.release_memory()
    again = Meter()
    pipe.extraction_extension(QUESTIONS[1], again)
    assert again.reused_passes == 0 and again.forward_passes == 2


def test_a_tokenizer_that_merges_across_the_split_gets_the_whole_prompt_prefilled(miniature_root):
    """A dummy-prefix tokenizer (as SentencePiece's Llama tokenizer: a leading space on every text)
    tokenizes the question's part alone differently than inside the whole prompt: the split is
    refused and each question prefills the whole prompt, with a fresh prefill's logits."""
    from tokenizers import normalizers

    adapter = load_adapter(ModelConfig(path=model_path(miniature_root, "llava"), device="cpu"))
    adapter.tokenizer.backend_tokenizer.normalizer = normalizers.Prepend(" ")
    pipe = pipeline(miniature_root, "llava", adapter)
    head, tail = pipe.extraction_split(QUESTIONS[0])
    assert ids(adapter, head) + ids(adapter, tail) != ids(adapter, head + tail)
    for question in QUESTIONS[:2]:
        meter = Meter()
        ext = pipe.extraction_extension(question, meter)
        whole = ids(adapter, whole_prompt(adapter, question))
        assert meter.forward_passes == 1 and meter.reused_passes == 0 and meter.tokens_prefilled == len(whole)
        torch.testing.assert_close(ext.logits, adapter.extend(None, whole_prompt(adapter, question)).logits)
