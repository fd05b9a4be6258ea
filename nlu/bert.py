"""The transformers model: a small `BertForSequenceClassification` trained from scratch on our
data, with a character vocabulary (vocab.txt) written from that data and read by
`BertTokenizerFast`. The only module of ours that imports torch / transformers.

Each character's sound goes in beside the character: BERT adds a "token type" embedding to every
token's embedding, and here the token type is the character's fuzzy pinyin syllable (pinyin.txt;
0 for special and Latin tokens). A homophone that ASR wrote instead of the right character, or a
character the vocabulary never saw ([UNK]), still carries the sound of what was said.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# Nothing is ever downloaded: the model and vocabulary are local files we wrote.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Shared 2-core machines: spinning OpenMP workers burn the CPU other processes need.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from nlu.config import BertSpec
from nlu.sound import HAN, everyday_syllables, fuzzy
from nlu.text import normalize

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
# transformers 5 resolves this name lazily, which type checkers cannot see.
BertTokenizerFast: Any = getattr(transformers, "BertTokenizerFast")  # noqa: B009

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_ASCII = "abcdefghijklmnopqrstuvwxyz0123456789"
VOCAB_FILE = "vocab.txt"
PINYIN_FILE = "pinyin.txt"
_NO_SOUND, _OTHER_SOUND = 0, 1  # token types of special/Latin tokens and of unlisted syllables


def write_vocab(texts: Sequence[str], path: Path) -> int:
    """Character vocabulary of the (normalised) texts plus Latin letters/digits as wordpieces."""
    chars = sorted({c for t in texts for c in normalize(t) if not c.isspace() and c not in _ASCII})
    tokens = list(SPECIAL_TOKENS) + list(_ASCII) + [f"##{c}" for c in _ASCII] + chars
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return len(tokens)


def tokenizer_from_vocab(path: Path) -> Any:
    return BertTokenizerFast(vocab=str(path), do_lower_case=True, tokenize_chinese_chars=True)


def write_pinyin(path: Path) -> dict[str, int]:
    """The token-type inventory: every fuzzy syllable of an everyday character (GB2312 level 1)."""
    path.write_text("\n".join(everyday_syllables()) + "\n", encoding="utf-8")
    return read_pinyin(path)


def read_pinyin(path: Path) -> dict[str, int]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {syl: i + 2 for i, syl in enumerate(lines)}


def sound_types(norm: str, offsets: Sequence[tuple[int, int]], sounds: dict[str, int]) -> list[int]:
    """Each token's type: its first character's fuzzy syllable (ids from pinyin.txt)."""
    out = []
    for start, end in offsets:
        char = norm[start] if end > start else ""
        out.append(sounds.get(fuzzy(char), _OTHER_SOUND) if char and HAN.match(char) else _NO_SOUND)
    return out


class BertIntentModel:
    """Logits for a batch of utterances; labels are `config.id2label` in training order."""

    def __init__(self, model: BertForSequenceClassification, tokenizer: Any,
                 max_len: int, sounds: dict[str, int] | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.sounds = sounds  # None: a model trained without sound types
        self._traced: Any = None

    def trace(self) -> bool:
        """Run the same weights through TorchScript (about half the per-utterance CPU: a 2-layer
        model is dominated by per-op Python overhead). Kept only if it matches the eager model
        on single and padded batch inputs; otherwise the eager model stays in use."""
        probe = ["喂你好", "明天下午三点付尾款可以吗", "嗯", "你们是哪家店的客服啊我没买过"]
        try:
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                enc = self._encode(probe[:2])
                traced = torch.jit.trace(self.model, (enc["input_ids"], enc["attention_mask"],
                                                      enc["token_type_ids"]),
                                         strict=False, check_trace=False)
                for batch in ([probe[0]], [probe[3]], probe, probe[1:3]):
                    enc = self._encode(batch)
                    want = self.model(**enc).logits
                    got = traced(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])["logits"]
                    if not torch.allclose(want, got, atol=1e-4):
                        return False
        except Exception:  # tracing is an optimisation; the eager model is always correct
            return False
        self._traced = traced
        return True

    @property
    def labels(self) -> tuple[str, ...]:
        id2label = self.model.config.id2label
        return tuple(id2label[i] for i in range(len(id2label)))

    def _encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        norms = [normalize(t) for t in texts]
        enc = self.tokenizer(norms, padding=True, truncation=True, max_length=self.max_len,
                             return_tensors="pt", return_token_type_ids=False,
                             return_offsets_mapping=self.sounds is not None)
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if self.sounds is None:
            out["token_type_ids"] = torch.zeros_like(enc["input_ids"])
        else:
            out["token_type_ids"] = torch.tensor(
                [sound_types(n, [tuple(o) for o in offs.tolist()], self.sounds)
                 for n, offs in zip(norms, enc["offset_mapping"], strict=True)], dtype=torch.long)
        return out

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        enc = self._encode(texts)
        with torch.inference_mode():
            if self._traced is None:
                return self.model(**enc).logits.float().numpy()
            return self._traced(enc["input_ids"], enc["attention_mask"],
                                enc["token_type_ids"])["logits"].float().numpy()

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory, safe_serialization=True)

    @classmethod
    def load(cls, directory: Path) -> BertIntentModel:
        vocab = directory / VOCAB_FILE
        if not vocab.is_file():
            raise FileNotFoundError(f"{vocab} is missing")
        model = BertForSequenceClassification.from_pretrained(directory, local_files_only=True)
        pinyin = directory / PINYIN_FILE
        sounds = read_pinyin(pinyin) if pinyin.is_file() else None
        loaded = cls(model, tokenizer_from_vocab(vocab), int(model.config.max_position_embeddings) - 2, sounds)
        loaded.trace()
        return loaded


def set_inference_threads(threads: int) -> None:
    """torch's intra-op threads for this process. A server wants 1: its parallelism is batching
    and worker processes, and OpenMP's extra threads spin-wait between the many small batches,
    burning a core the event loop needs."""
    torch.set_num_threads(max(1, threads))


def train_bert(texts: Sequence[str], labels: Sequence[int] | np.ndarray, label_names: Sequence[str], directory: Path,
               *, spec: BertSpec = BertSpec(), seed: int = 13, threads: int = 2,
               progress: Callable[[int, int], None] | None = None,
               vocab_texts: Sequence[str] | None = None) -> BertIntentModel:
    """Train from scratch (seeded) and save config, weights, vocab.txt and pinyin.txt into
    `directory`. The character vocabulary comes from `vocab_texts` (default: `texts`): given
    the un-noised examples, the noisy ones teach the model to read an unknown character by its
    sound."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = write_vocab(vocab_texts if vocab_texts is not None else texts, directory / VOCAB_FILE)
    sounds = write_pinyin(directory / PINYIN_FILE)
    tokenizer = tokenizer_from_vocab(directory / VOCAB_FILE)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    try:
        config = BertConfig(  # type: ignore[call-arg]  # PretrainedConfig kwargs
            vocab_size=vocab_size, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
            hidden_dropout_prob=spec.dropout, attention_probs_dropout_prob=spec.dropout,
            max_position_embeddings=spec.max_len + 2, type_vocab_size=len(sounds) + 2,
            num_labels=len(label_names), id2label=dict(enumerate(label_names)),
            label2id={n: i for i, n in enumerate(label_names)}, pad_token_id=0,
        )
        config.huashu_spec = asdict(spec)
        model = BertForSequenceClassification(config)
        norms = [normalize(t) for t in texts]
        enc = tokenizer(norms, truncation=True, max_length=spec.max_len, return_token_type_ids=False,
                        return_attention_mask=False, return_offsets_mapping=True)
        ids: list[list[int]] = enc["input_ids"]
        types = [sound_types(n, offs, sounds) for n, offs in zip(norms, enc["offset_mapping"], strict=True)]
        y = np.asarray(labels, dtype=np.int64)
        _fit(model, ids, types, y, spec, seed, progress)
        model.eval()
        result = BertIntentModel(model, tokenizer, spec.max_len, sounds)
        result.save(directory)
        return result
    finally:
        torch.set_num_threads(prev_threads)


def _batches(lengths: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of similar length (less padding), in shuffled order."""
    order = rng.permutation(len(lengths))
    chunks = [order[i:i + size * 20] for i in range(0, len(order), size * 20)]  # see _fit's total
    batches = []
    for chunk in chunks:
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _fit(model: BertForSequenceClassification, ids: list[list[int]], types: list[list[int]], y: np.ndarray,
         spec: BertSpec, seed: int, progress: Callable[[int, int], None] | None) -> None:
    rng = np.random.default_rng(seed)
    n = len(ids)
    chunk = spec.batch_size * 20
    steps_per_epoch = sum(math.ceil(min(chunk, n - i) / spec.batch_size) for i in range(0, n, chunk))
    total = steps_per_epoch * spec.epochs
    warmup = max(1, int(total * spec.warmup))
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in name]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2 or "LayerNorm" in name]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=spec.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    model.train()
    step = 0
    lengths = np.array([len(x) for x in ids])
    for _ in range(spec.epochs):
        for idx in _batches(lengths, spec.batch_size, rng):
            width = max(len(ids[i]) for i in idx)
            batch = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            sound = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                batch[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
                sound[row, :len(types[i])] = torch.tensor(types[i])
            out = model(input_ids=batch, attention_mask=mask, token_type_ids=sound,
                        labels=torch.from_numpy(y[idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if progress is not None:
                progress(step, total)
