#!/usr/bin/env python3
"""GPU timings of a real-size LLaVA-1.5-7B (built from its config, random weights, float16).

    python scripts/gpu_bench.py [--attn sdpa flash_attention_2] [--methods vanilla focus zoom]
                                [--repeats 3] [--stages] [--verify-crops 6] [--json timings.json]

No checkpoint is needed: the architecture of llava-hf/llava-1.5-7b-hf (CLIP ViT-L/14-336 + Llama-2-7B,
32 layers, hidden 4096, vocabulary 32064) is built from its configuration with random weights, with
the tokenizer and image processor of the LLaVA miniature (models/miniatures/llava: same 336 px input,
same 576 image tokens). Random weights never stop early, so every method runs fixed step counts:
FOCUS verifies ``--focus-steps`` regions (no overrun), the zoom tree pops ``--zoom-steps`` nodes (it
never reaches the answering threshold), every answer decodes ``--answer-tokens`` tokens; targets come
from the rule parser (``--targets model`` adds the few-shot target prompt and its decoding).

Prints, per attention implementation (sdpa, and flash_attention_2 when flash-attn imports) and
method: seconds per question for the first question on a frame (the frame prefix is prefilled)
and for a second question on the same frame (prefix from the cache), forward passes, prefilled
tokens and peak GPU memory; then the cost of a fresh prefill of image + question against the same
question on the cached prefix; then the verify stage alone at ``--verify-crops`` crops (6), one crop
per forward (``search.verify_batch`` 1) against all of them in one batched forward (verify_batch 6),
with how far their existence confidences differ. ``--stages`` also prints where each question's
time goes (pipeline stages and the model calls inside them; the GPU is synchronised after every
model call for this, which costs the CPU/GPU overlap, so leave it off for the end-to-end seconds).
``--tiny --device cpu`` runs the same logic on a tiny configuration
(for checking the script without a GPU); without a CUDA device and without ``--tiny`` it says so and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ("What shape is the red object?", "What shape is the blue object?")
NO_GPU = (
    "gpu_bench: no CUDA device: this benchmark times a real-size LLaVA-1.5-7B (about 14 GB of "
    "float16 weights) and needs an NVIDIA GPU with about 20 GB free. Run it on a machine with one, or "
    "use --tiny --device cpu to check the script's logic on a tiny configuration."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny configuration (checks the logic; numbers mean nothing)")
    p.add_argument(
        "--attn",
        nargs="+",
        choices=("sdpa", "flash_attention_2", "eager"),
        default=None,
        help="attention implementations (default: sdpa, plus flash_attention_2 if flash-attn imports)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=("vanilla", "focus", "zoom", "attention", "random"),
        default=["vanilla", "focus", "zoom"],
    )
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (median)")
    p.add_argument("--focus-steps", type=int, default=6, help="regions FOCUS (and random) verify")
    p.add_argument("--zoom-steps", type=int, default=4, help="nodes the zoom tree pops per target")
    p.add_argument("--zoom-depth", type=int, default=3)
    p.add_argument("--answer-tokens", type=int, default=16, help="tokens every answer decodes")
    p.add_argument("--targets", choices=("rule", "model"), default="rule")
    p.add_argument(
        "--frame",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=(2560, 1440),
        help="size of the synthetic frame (default 2560 1440)",
    )
    p.add_argument(
        "--processor",
        default=str(ROOT / "models" / "miniatures" / "llava"),
        help="folder with a LLaVA tokenizer + image processor (default: the LLaVA miniature)",
    )
    p.add_argument("--verify-crops", type=int, default=6, help="crops in the verify-stage timing (0: skip it)")
    p.add_argument("--verify-crop-side", type=int, default=400, help="side of those crops in frame pixels")
    p.add_argument("--stages", action="store_true", help="also print seconds per stage (synchronises the GPU)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    return p


def llava_config(tiny: bool, image_token_id: int, pad_token_id: int):
    """llava-hf/llava-1.5-7b-hf's architecture (or a tiny one with the same 336 px / 576-token geometry)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if tiny:
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=336,
            patch_size=14,
            projection_dim=32,
        )
        text = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=32064,
            max_position_embeddings=4096,
        )
    else:
        vision = CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
        text = LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32064,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            hidden_act="silu",
        )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=576,
        pad_token_id=pad_token_id,
    )


def build_pipeline(args):
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from focus_ros.core.config import ModelConfig, search_defaults
    from focus_ros.core.methods import ZoomConfig
    from focus_ros.core.models.llava import LlavaAdapter
    from focus_ros.core.pipeline import FocusPipeline

    processor = AutoProcessor.from_pretrained(args.processor)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    config = llava_config(args.tiny, image_token_id, processor.tokenizer.pad_token_id)
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(args.device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    name = "llava-1.5-7b (random weights)" if not args.tiny else "llava-1.5 tiny (random weights)"
    adapter = LlavaAdapter(model, processor, ModelConfig(path=name, family="llava", device=args.device))
    from dataclasses import replace

    search = replace(
        search_defaults("llava"),
        max_steps=args.focus_steps,
        overrun=False,
        target_extraction=args.targets,
        max_new_tokens=args.answer_tokens,
    )
    zoom = ZoomConfig(max_depth=args.zoom_depth, max_steps=args.zoom_steps, answer_threshold=1.0)
    return FocusPipeline(adapter, search, zoom=zoom)


def frame(w: int, h: int):
    from focus_ros.eval.scenes import SceneSpec, make_scene

    scene = make_scene(
        0,
        0,
        SceneSpec(
            short_side=(min(w, h), min(w, h)), aspects=(max(w, h) / min(w, h),), portrait_share=0.0 if w >= h else 1.0
        ),
    )
    return scene.image


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def bench_attn(args, pipe, attn: str, image) -> tuple[list[dict], dict]:
    import torch

    pipe.adapter.model.set_attn_implementation(attn)  # raises when flash-attn is missing
    pipe.adapter.config.attn_implementation = attn
    cuda = args.device == "cuda"
    pipe.run(image, QUESTIONS[0], method="vanilla")  # warm-up (kernels, allocator)
    rows = []
    for method in args.methods:
        pipe.clear_cache()
        pipe.run(image, QUESTIONS[0], method=method)  # per-method warm-up
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = {"first": [], "second": []}
        results = {}
        for rep in range(args.repeats):
            pipe.clear_cache()
            for which, question in (("first", QUESTIONS[0]), ("second", QUESTIONS[1])):
                sync(args.device)
                t0 = time.perf_counter()
                r = pipe.run(image, question, method=method, frame_key=f"frame-{rep}")
                sync(args.device)
                times[which].append(time.perf_counter() - t0)
                results[which] = r
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        for which in ("first", "second"):
            r = results[which]
            rows.append(
                {
                    "attn": attn,
                    "method": method,
                    "question": which,
                    "seconds": statistics.median(times[which]),
                    "forward_passes": r.forward_passes,
                    "tokens_prefilled": r.tokens_prefilled,
                    "generated_tokens": r.generated_tokens,
                    "peak_gib": peak if cuda else None,
                    "prefix_cached": r.prefix_cached,
                    "timings": {k: round(v, 6) for k, v in r.timings.items()},
                }
            )
    # the cached prefix against a fresh prefill of image + question
    adapter = pipe.adapter
    text = adapter.question_text(QUESTIONS[1])
    fresh, cached = [], []
    prefix = None
    for _ in range(args.repeats):
        sync(args.device)
        t0 = time.perf_counter()
        prefix = adapter.prefill_image(image)
        adapter.extend(prefix, text)
        sync(args.device)
        fresh.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        adapter.extend(prefix, text)
        sync(args.device)
        cached.append(time.perf_counter() - t0)
    kv_bytes = sum(t.numel() * t.element_size() for layer in prefix.cache.layers for t in (layer.keys, layer.values))
    question_tokens = len(adapter.tokenizer(text, add_special_tokens=False)["input_ids"])
    prefix_row = {
        "attn": attn,
        "fresh_seconds": statistics.median(fresh),
        "cached_seconds": statistics.median(cached),
        "prefix_tokens": prefix.length,
        "question_tokens": question_tokens,
        "kv_cache_mib": kv_bytes / 2**20,
    }
    del prefix
    pipe.clear_cache()
    if cuda:
        torch.cuda.empty_cache()
    return rows, prefix_row


def bench_verify(args, pipe, attn: str, image) -> dict | None:
    """The verify stage alone on ``--verify-crops`` fixed crops of one target, one crop per forward
    (``search.verify_batch`` 1) and all in one batched forward; median seconds."""
    from focus_ros.cli.bench_prefix import time_verify_stage

    n = args.verify_crops
    if n < 1:
        return None
    if not hasattr(pipe.search, "verify_batch"):  # a SearchConfig without verify_batch: nothing to compare
        print("gpu_bench: search.verify_batch is not a setting here: verify timing skipped", file=sys.stderr)
        return None
    seconds, diff = time_verify_stage(pipe, image, n, args.verify_crop_side, args.repeats)
    return {
        "attn": attn,
        "crops": n,
        "crop_side": min(args.verify_crop_side, *image.shape[:2]),
        "one_at_a_time_seconds": seconds[1],
        "batched_seconds": seconds[n],
        "speedup": seconds[1] / seconds[n],
        "max_confidence_diff": diff,
    }


STAGES = (
    "targets",
    "prefill",
    "relevance",
    "verify",
    "answer",
    "model.preprocess",
    "model.prefill",
    "model.extend",
    "model.generate",
    "total",
)


def print_stages(rows: list[dict]) -> None:
    """Milliseconds per stage of every row (pipeline stages, then the model calls inside them)."""
    print("seconds per stage, ms (model.* run inside the stages before them):")
    print(f"{'attention':18} {'method':9} {'question':7}" + "".join(f"{s:>17}" for s in STAGES))
    for r in rows:
        cells = "".join(f"{r['timings'].get(s, 0.0) * 1000:17.1f}" for s in STAGES)
        print(f"{r['attn']:18} {r['method']:9} {r['question']:7}{cells}")


def flash_available() -> bool:
    try:
        import flash_attn  # noqa: F401
    except Exception:  # ImportError, or a broken build raising anything else
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.tiny:
        print(
            "gpu_bench: the real-size model on the CPU would take hours; use --tiny with --device cpu", file=sys.stderr
        )
        return 2
    if not (Path(args.processor) / "tokenizer_config.json").is_file():
        print(
            f"gpu_bench: no tokenizer/processor in {args.processor}: run scripts/setup.sh (builds the miniatures) "
            "or pass --processor",
            file=sys.stderr,
        )
        return 2
    attns = args.attn or (["sdpa"] + (["flash_attention_2"] if args.device == "cuda" and flash_available() else []))
    import transformers

    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    w, h = args.frame
    image = frame(w, h)
    pipe = build_pipeline(args)
    pipe.adapter.sync_timings = args.stages  # model-call seconds after their kernels, not at launch
    rows, prefix_rows, verify_rows = [], [], []
    for attn in attns:
        try:
            r, pr = bench_attn(args, pipe, attn, image)
            vr = bench_verify(args, pipe, attn, image)
        except (ImportError, ValueError, RuntimeError) as exc:
            print(f"gpu_bench: {attn} skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
            continue
        rows += r
        prefix_rows.append(pr)
        verify_rows += [vr] if vr else []
    size = "tiny configuration" if args.tiny else "LLaVA-1.5-7B architecture"
    dtype = "float16" if args.device == "cuda" else "float32"
    print(
        f"gpu_bench: {size}, random weights, {dtype}, {device_name}; torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(
        f"frame {image.shape[1]}x{image.shape[0]}; targets: {args.targets}; focus: {args.focus_steps} verified "
        f"regions, no overrun; zoom: {args.zoom_steps} pops, depth <= {args.zoom_depth}, no early stop; "
        f"answers: {args.answer_tokens} tokens; median of {args.repeats}"
    )
    head = (
        f"{'attention':18} {'method':9} {'question':17} {'seconds':>8} {'passes':>7} {'prefilled':>10} {'peak GiB':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        label = "first (prefill)" if r["question"] == "first" else "second (cached)"
        peak = f"{r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f"{'-':>9}"  # None on the CPU
        print(
            f"{r['attn']:18} {r['method']:9} {label:17} {r['seconds']:8.3f} {r['forward_passes']:7d} "
            f"{r['tokens_prefilled']:10d} {peak}"
        )
    for p in prefix_rows:
        print(
            f"{p['attn']}: image + question prefilled fresh {p['fresh_seconds'] * 1000:.1f} ms vs the question on "
            f"the cached prefix {p['cached_seconds'] * 1000:.1f} ms ({p['prefix_tokens']} prefix tokens, "
            f"{p['question_tokens']} question tokens; the prefix's KV cache holds {p['kv_cache_mib']:.0f} MiB)"
        )
    for v in verify_rows:
        print(
            f"{v['attn']}: verify stage, {v['crops']} crops of {v['crop_side']} px: one at a time (search.verify_batch "
            f"1) {v['one_at_a_time_seconds'] * 1000:.1f} ms, batched (verify_batch {v['crops']}) "
            f"{v['batched_seconds'] * 1000:.1f} ms: {v['speedup']:.2f}x; confidences differ by at most "
            f"{v['max_confidence_diff']:.1e}"
        )
    if args.stages:
        print_stages(rows)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": device_name,
                    "tiny": args.tiny,
                    "rows": rows,
                    "prefix": prefix_rows,
                    "verify": verify_rows,
                    "args": vars(args),
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
