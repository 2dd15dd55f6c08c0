"""BGE-M3 on CPU: FlagEmbedding fp32 against ONNX Runtime fp32 and int8, at BGE-M3's real size.

    python -m evals.bench_encoders --data ../shared/data/manuals [--passages 48] [--workdir DIR] [--out DIR]

BGE-M3's weights cannot be downloaded here, but speed depends only on shapes: this builds a randomly
initialised model with BGE-M3's exact configuration (XLM-R large: 24 layers, hidden 1024, 16 heads, 4096
intermediate, 250,002-token vocabulary, 8,194 positions, plus the sparse and ColBERT heads; 568M
parameters) in ``--workdir`` (kept and reused: it is 2.3 GB), with a tokenizer trained on the manuals
(XLM-R's own 250k-piece tokenizer is not available offline, so sequence lengths are approximate; the mean
is printed). The passages are the manuals' chunks (256 tokens at most, the ingest default), a sample
spread over the languages. Each variant encodes the same sample in its own process (its peak RSS is its
own), after one warm-up batch, with length-sorted batches of ``--batch-size``; it reports passages/s.
Agreement: fp32 ONNX against FlagEmbedding (max |difference| of dense vectors and lexical weights), int8
against fp32 (dense cosine, and the overlap of each passage's 20 heaviest lexical terms). The one-time
export and quantisation are timed too. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evals.report import publish_bench
from rag.chunk import chunk_document
from rag.config import Precision
from rag.types import Encoding
from tests.hostile import run_measured

VARIANTS = ("flagembedding-fp32", "onnx-fp32", "onnx-int8")
BGE_M3_SHAPE = {"vocab_size": 250_002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                "intermediate_size": 4096, "max_position_embeddings": 8194, "type_vocab_size": 1}
TOP_TERMS = 20


def build_model(target: Path, texts: list[str]) -> Path:
    """Write a random BGE-M3-shaped checkpoint (and a tokenizer trained on ``texts``) into ``target``."""
    if (target / "colbert_linear.pt").is_file():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    target.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.train_from_iterator(texts, UnigramTrainer(vocab_size=16_000, special_tokens=specials,
                                                        unk_token="<unk>", show_progress=False))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tokenizer.token_to_id("<s>")), ("</s>", tokenizer.token_to_id("</s>"))])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                            cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                            model_max_length=8192).save_pretrained(str(target))
    config = XLMRobertaConfig(**BGE_M3_SHAPE, bos_token_id=0, pad_token_id=1, eos_token_id=2, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(str(target))
    torch.save(torch.nn.Linear(1024, 1).state_dict(), target / "sparse_linear.pt")
    torch.save(torch.nn.Linear(1024, 1024).state_dict(), target / "colbert_linear.pt")
    return target


def manual_chunks(data: Path, passages: int) -> list[str]:
    """A sample of the manuals' chunks (at most 256 whitespace-or-character tokens), spread over languages."""
    from connectors.files import FileConnector

    connector = FileConnector(data)
    chunks = []
    for uri in connector.sources():
        for document in connector.load(uri):
            # A token budget by characters/4 (CJK: characters/1.5) stands in for the model's tokenizer.
            chunks += [c.text for c in chunk_document(document, _approximate_tokens, 256)]
    step = max(1, len(chunks) // passages)
    return chunks[::step][:passages]


def _approximate_tokens(text: str) -> int:
    wide = sum(1 for ch in text if ord(ch) > 0x2E80)
    return int(wide / 1.5 + (len(text) - wide) / 4) + 2


def _load(variant: str, model: Path, cache: Path, batch_size: int) -> Any:
    if variant == "flagembedding-fp32":
        from rag.encoders.bge_m3 import BgeM3Encoder

        return BgeM3Encoder.load(str(model), device="cpu", batch_size=batch_size, max_length=512)
    from rag.encoders.bge_m3_onnx import BgeM3OnnxEncoder

    precision = Precision.INT8 if variant == "onnx-int8" else Precision.FP32
    return BgeM3OnnxEncoder.load(str(model), precision=precision, cache_dir=cache, batch_size=batch_size,
                                 max_length=512)


def run_variant(variant: str, model: Path, cache: Path, texts_file: Path, out: Path, batch_size: int) -> None:
    """In this process: load ``variant``, encode the texts, write speed and outputs to ``out`` (.npz)."""
    texts = json.loads(texts_file.read_text())
    started = time.perf_counter()
    encoder = _load(variant, model, cache, batch_size)
    load_s = time.perf_counter() - started
    encoder.encode_passages(texts[:batch_size])  # warm-up
    started = time.perf_counter()
    encodings: list[Encoding] = encoder.encode_passages(texts)
    seconds = time.perf_counter() - started
    tokens = [encoder.count_tokens(t) for t in texts]
    sparse = [json.dumps({str(k): v for k, v in (e.sparse.weights if e.sparse else {}).items()}) for e in encodings]
    np.savez(out, dense=np.stack([e.dense for e in encodings]), sparse=np.array(sparse),
             stats=np.array([load_s, seconds, float(np.mean(tokens))]))


def _sparse(raw: Any) -> list[dict[int, float]]:
    return [{int(k): v for k, v in json.loads(str(s)).items()} for s in raw]


def _top_overlap(a: dict[int, float], b: dict[int, float]) -> float:
    top_a = set(sorted(a, key=lambda t: -a[t])[:TOP_TERMS])
    top_b = set(sorted(b, key=lambda t: -b[t])[:TOP_TERMS])
    return len(top_a & top_b) / max(1, len(top_a | top_b))


def measure(data: Path, workdir: Path, passages: int, batch_size: int) -> dict[str, Any]:
    texts = manual_chunks(data, passages)
    started = time.perf_counter()
    model = build_model(workdir / "bge-m3-shaped", texts)
    build_s = time.perf_counter() - started
    cache = workdir / "onnx"
    from rag.encoders.bge_m3_onnx import export

    exports = {}
    for precision in (Precision.FP32, Precision.INT8):
        started = time.perf_counter()
        path = export(model, cache, precision)
        exports[precision.value] = {"seconds": round(time.perf_counter() - started, 1),
                                    "bytes": sum(p.stat().st_size for p in path.parent.glob(f"model-{precision.value}*"))}
    texts_file = workdir / "texts.json"
    texts_file.write_text(json.dumps(texts))
    rows: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for variant in VARIANTS:
        out = workdir / f"{variant}.npz"
        argv = [sys.executable, "-m", "evals.bench_encoders", "--variant", variant, "--model", str(model),
                "--cache", str(cache), "--texts", str(texts_file), "--result", str(out),
                "--batch-size", str(batch_size)]
        run = run_measured(argv, {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=3600)
        if run.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{run.stderr[-3000:]}")
        result = np.load(out)
        load_s, seconds, mean_tokens = (float(x) for x in result["stats"])
        outputs[variant] = (result["dense"], _sparse(result["sparse"]))
        rows[variant] = {"passages_per_s": round(len(texts) / seconds, 3), "load_s": round(load_s, 1),
                         "peak_rss_mb": round(run.peak_rss_mb), "mean_tokens": round(mean_tokens, 1)}
    flag_dense, flag_sparse = outputs["flagembedding-fp32"]
    fp32_dense, fp32_sparse = outputs["onnx-fp32"]
    int8_dense, int8_sparse = outputs["onnx-int8"]
    agreement = {
        "onnx_fp32_vs_flagembedding_max_abs_dense": float(np.abs(fp32_dense - flag_dense).max()),
        "onnx_fp32_vs_flagembedding_max_abs_sparse": max(
            (abs(a.get(t, 0.0) - b.get(t, 0.0)) for a, b in zip(fp32_sparse, flag_sparse) for t in {*a, *b}),
            default=0.0),
        "int8_vs_fp32_dense_cosine_mean": float(np.mean(np.sum(int8_dense * fp32_dense, axis=1))),
        "int8_vs_fp32_dense_cosine_min": float(np.min(np.sum(int8_dense * fp32_dense, axis=1))),
        f"int8_vs_fp32_top{TOP_TERMS}_term_overlap_mean": float(np.mean(
            [_top_overlap(a, b) for a, b in zip(int8_sparse, fp32_sparse)])),
    }
    return {"passages": len(texts), "batch_size": batch_size, "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2), "model_build_s": round(build_s, 1),
            "exports": exports, "variants": rows, "agreement": agreement}


def _table(report: dict[str, Any]) -> str:
    lines = ["| variant | passages/s | load s | peak RSS MB |", "|---|---|---|---|"]
    for name, row in report["variants"].items():
        lines.append(f"| {name} | {row['passages_per_s']:.2f} | {row['load_s']:.1f} | {row['peak_rss_mb']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the manuals folder (../shared/data/manuals)")
    parser.add_argument("--passages", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workdir", type=Path, help="keeps the 2.3 GB model and its exports between runs")
    parser.add_argument("--out", type=Path, help="directory for bench_encoders.json")
    # One variant in this process (the parent runs each variant this way).
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--texts", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        run_variant(args.variant, args.model, args.cache, args.texts, args.result, args.batch_size)
        return
    if args.data is None:
        parser.error("--data is required")
    with tempfile.TemporaryDirectory(prefix="rosetta-bench-encoders-") as tmp:
        report = measure(args.data, args.workdir or Path(tmp), args.passages, args.batch_size)
    publish_bench(_table(report), report, args.out, "bench_encoders")


if __name__ == "__main__":
    main()
