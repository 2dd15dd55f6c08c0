"""Tiny, offline stand-ins for real models, built in the same on-disk format the real ones ship in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# A few sentences per script the tests exercise; the tokenizer is trained on exactly these.
CORPUS = (
    "The filter is replaced every month.",
    "Replace the filter before the pump starts.",
    "The pump starts when the pressure drops.",
    "Read the manual before you open the valve.",
    "Der Filter wird monatlich gewechselt.",
    "Die Pumpe startet, wenn der Druck fällt.",
    "Lesen Sie die Anleitung, bevor Sie das Ventil öffnen.",
    "Wie oft wird der Filter gewechselt?",
    "フィルターは毎月交換します。",
    "圧力が下がるとポンプが始動します。",
    "バルブを開ける前にマニュアルを読んでください。",
    "フィルターはどのくらいの頻度で交換しますか？",
    "过滤器每个月更换一次。",
    "压力下降时泵会启动。",
    "打开阀门之前请阅读手册。",
    "过滤器多久更换一次？",
    "O filtro é trocado todos os meses.",
    "A bomba liga quando a pressão cai.",
    "Leia o manual antes de abrir a válvula.",
    "Com que frequência o filtro é trocado?",
    "يتم تغيير المرشح كل شهر.",
    "تبدأ المضخة عندما ينخفض الضغط.",
    "اقرأ الدليل قبل فتح الصمام.",
    "كم مرة يتم تغيير المرشح؟",
    "เปลี่ยนไส้กรองทุกเดือน",
    "ปั๊มจะเริ่มทำงานเมื่อความดันลดลง",
    "อ่านคู่มือก่อนเปิดวาล์ว",
    "ควรเปลี่ยนไส้กรองบ่อยแค่ไหน",
)
# XLM-R's order: <s>=0 (cls/bos), <pad>=1 (its position-id offset), </s>=2 (eos/sep), <unk>=3.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
HIDDEN = 32
# Same context as the real BAAI/bge-m3 (8192 tokens + XLM-R's 2 offset positions), so load() defaults fit.
MAX_POSITIONS = 8194
MAX_TOKENS = 8192
SEED = 0


def build_tiny_bge_m3(target: Path) -> Path:
    """Write a BGE-M3-format model (random XLM-R, trained tokenizer, sparse and ColBERT heads) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    _save_backbone(target, vocab_size=_save_tokenizer(target))
    _save_heads(target)
    return target


def _train_tokenizer() -> Tokenizer:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer

    tokenizer = Tokenizer(Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = UnigramTrainer(
        vocab_size=400, special_tokens=list(SPECIAL_TOKENS), unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer.model = Unigram(_canonical_vocab(tokenizer.to_str()), unk_id=SPECIAL_TOKENS.index("<unk>"))
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return tokenizer


def _canonical_vocab(tokenizer_json: str) -> list[tuple[str, float]]:
    # Trained scores vary in their last digits between runs (parallel sums) and single characters get
    # scores in hash-map order; coarse rounding plus sorting by piece makes the ids the same on every build.
    pieces = [(piece, round(score, 1)) for piece, score in json.loads(tokenizer_json)["model"]["vocab"]]
    specials = [(token, 0.0) for token in SPECIAL_TOKENS]
    rest = sorted((p for p in pieces if p[0] not in SPECIAL_TOKENS), key=lambda p: (-p[1], p[0]))
    return specials + rest


def _save_tokenizer(target: Path) -> int:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_TOKENS,
    )
    tokenizer.save_pretrained(str(target))
    return len(tokenizer)


def _save_backbone(target: Path, vocab_size: int) -> None:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        type_vocab_size=1,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(SEED)
    XLMRobertaModel(config).save_pretrained(str(target))


def _save_heads(target: Path) -> None:
    import torch

    # Shapes FlagEmbedding's EncoderOnlyEmbedderM3Runner.get_model builds before load_state_dict:
    # sparse Linear(hidden, 1) and colbert Linear(hidden, hidden) (colbert_dim=-1).
    torch.manual_seed(SEED + 1)
    torch.save(torch.nn.Linear(HIDDEN, 1).state_dict(), target / "sparse_linear.pt")
    torch.save(torch.nn.Linear(HIDDEN, HIDDEN).state_dict(), target / "colbert_linear.pt")


def build_tiny_cross_encoder(target: Path, tokenizer_source: Path) -> Path:
    """Write a one-label XLM-R sequence classifier (seeded random weights) with ``tokenizer_source``'s
    tokenizer into ``target``: the on-disk format of BAAI/bge-reranker-v2-m3."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    target.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(str(target))
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        # Wider than XLM-R's 0.02 so random pairs get clearly different scores, and ties cannot decide order.
        initializer_range=0.5,
    )
    config.num_labels = 1  # one relevance logit, as in bge-reranker-v2-m3
    torch.manual_seed(SEED + 2)
    XLMRobertaForSequenceClassification(config).save_pretrained(str(target))
    return target
