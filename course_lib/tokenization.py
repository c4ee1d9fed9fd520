"""Tokenization: byte-level BPE (as in GPT-2), a word-level tokenizer and WordPiece (as in BERT).

Implemented:

- `BPETokenizer`: byte-level byte-pair encoding. The text is first cut into pre-tokens by a regex
  (`GPT2_PATTERN`, verbatim from openai/gpt-2 ``encoder.py``; `GPT4_PATTERN` is tiktoken's
  ``cl100k_base``; ``pattern=None`` keeps the whole text as one chunk), each pre-token is encoded as
  UTF-8 bytes, and training repeatedly merges the most frequent adjacent pair of ids into a new id.
  Ids 0..255 are the 256 single bytes, so every string can be encoded: there is no out-of-vocabulary
  input. Training counts pairs once over the *distinct* pre-tokens, weighted by how often each occurs,
  and after each merge updates only the counts of the pre-tokens that contained the merged pair
  (`naive_bpe_merges` is the textbook version that recounts everything, kept as a reference).
  Special tokens (GPT-2's ``<|endoftext|>``) are registered with ids after the merges; `encode` cuts
  them out of the text before pre-tokenization, as minbpe's RegexTokenizer and tiktoken do, and
  only where ``allowed_special`` lets it: by default a special token in the text is an error.
- `WordLevelTokenizer`: one id per known word, ``[UNK]`` for every other word.
- `WordPieceTokenizer`: BERT's greedy longest-match-first segmentation into a word-initial piece and
  ``##`` continuation pieces, ``[UNK]`` for a word it cannot cover; trained with the WordPiece
  likelihood score ``freq(ab) / (freq(a) * freq(b))``.
- `split_words`: the word splitter the word-level and WordPiece tokenizers share.
- Measuring out-of-vocabulary words: `unk_rate` (the share of word occurrences a tokenizer maps to
  ``[UNK]``), `nested_unk_rates` (the same for the smaller vocabularies that are prefixes of a
  trained one), `wordpiece_spells` (whether pieces are a valid WordPiece spelling of a word), and,
  for byte fallback (a word WordPiece cannot spell written as ``<0xE1>``-style byte tokens, as
  LLaMA's SentencePiece does), `is_byte_token` and `byte_fallback_text`.

Left out: special tokens for the word-level and WordPiece tokenizers (BERT's ``[CLS]``/``[SEP]``/
``[MASK]`` are added by `course_lib.models.EncoderTokenizer`), tiktoken's ``disallowed_special``
argument (here a registered special token that ``allowed_special`` does not allow is either an
error, ``"none_raise"``, or plain text), Unicode normalisation and lowercasing, BERT's accent
stripping, SentencePiece and unigram-LM tokenizers,
BPE dropout, and training on texts too large to hold in memory.
"""

from __future__ import annotations

import heapq
import json
import warnings
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence, Set
from pathlib import Path

import regex
import torch

from course_lib.validation import int_in_range, integer, nonnegative_int, one_of, positive_int, type_name

__all__ = [
    "GPT2_PATTERN", "GPT4_PATTERN", "WORD_PATTERN", "UNK_TOKEN", "Tokenizer", "BPETokenizer", "naive_bpe_merges",
    "split_words", "WordLevelTokenizer", "WordPieceTokenizer", "ALLOWED_SPECIAL_MODES", "SPECIAL_TOKENS",
    "EncoderTokenizer", "unk_rate", "nested_unk_rates", "wordpiece_spells", "is_byte_token", "byte_fallback_text",
]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenization regex, verbatim from openai/gpt-2 ``src/encoder.py`` (Radford et al., 2019)."""

GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
"""The ``cl100k_base`` pre-tokenization regex (GPT-3.5/GPT-4), from openai/tiktoken ``openai_public.py``."""

WORD_PATTERN = r"\p{Han}|(?:(?!\p{Han})\w)+|[^\w\s]"
"""Words for `split_words`: a run of word characters, one punctuation or symbol character, or one
CJK ideograph (BERT splits those one by one because Chinese has no spaces between words)."""

UNK_TOKEN = "[UNK]"
_BYTE_TOKEN = regex.compile(r"<0x[0-9A-F]{2}>")

_BYTES = 256
_ENCODE_CACHE_LIMIT = 100_000
ALLOWED_SPECIAL_MODES = ("all", "none", "none_raise")

Pair = tuple[Hashable, Hashable]


# ----------------------------------------------------------------------------------------------
# Input checks shared by the tokenizers


def _check_text(text: object, name: str = "text", allow_empty: bool = True) -> str:
    """Return ``text`` if it is a str that UTF-8 can encode; raise a clear error otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if not allow_empty and not text:
        raise ValueError(f"{name} must be a non-empty str, got ''")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise ValueError(
            f"{name} contains a lone surrogate U+{code:04X} at index {error.start}, which cannot be "
            "encoded as UTF-8"
        ) from None
    return text


def _check_ids(ids: object, vocab_size: int) -> list[int]:
    """Return ``ids`` as a list of ints in ``[0, vocab_size)``; raise a clear error otherwise."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be an iterable of ints, got {type(ids).__name__}")
    checked = []
    for position, value in enumerate(ids):
        token_id = integer(value, f"ids[{position}]")  # int, NumPy ints and 0-d integer tensors
        if not 0 <= token_id < vocab_size:
            raise ValueError(
                f"ids[{position}] = {token_id} is outside the vocabulary (valid ids: 0..{vocab_size - 1})"
            )
        checked.append(token_id)
    return checked


def _warn_small_vocab(kind: str, reached: int, requested: int, reason: str) -> None:
    warnings.warn(
        f"{kind} training stopped at vocab_size {reached} instead of {requested}: {reason}",
        UserWarning,
        stacklevel=3,
    )


# ----------------------------------------------------------------------------------------------
# The common interface


class Tokenizer(ABC):
    """What every tokenizer here offers: ``encode``, ``decode``, ``vocab_size``, compression ratio."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of the token ids ``ids``."""

    def compression_ratio(self, text: str) -> float:
        """Characters per token of ``text``: higher means shorter sequences for the same text."""
        text = _check_text(text, allow_empty=False)
        n_tokens = len(self.encode(text))
        if n_tokens == 0:
            raise ValueError(f"text produced no tokens, got {text!r}")
        return len(text) / n_tokens


# ----------------------------------------------------------------------------------------------
# Pair counts and merges, shared by BPE and WordPiece training


def _merge(symbols: list, pair: Pair, new: Hashable) -> list:
    """Replace every non-overlapping occurrence of ``pair`` in ``symbols``, left to right, by ``new``."""
    first, second = pair
    merged = []
    i, n = 0, len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == first and symbols[i + 1] == second:
            merged.append(new)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


class _PairCounts:
    """Adjacent-pair and symbol counts over distinct words weighted by their frequency.

    ``merge`` rewrites only the words that contain the merged pair and updates the counts by the
    difference, instead of recounting every pair of the corpus.
    """

    def __init__(self, words: list[list], freqs: list[int]) -> None:
        self.words = words
        self.freqs = freqs
        self.pairs: dict[Pair, int] = defaultdict(int)  # only pairs with a positive count
        self.symbols: dict[Hashable, int] = defaultdict(int)
        self._where: dict[Pair, set[int]] = defaultdict(set)  # may list words that lost the pair
        for index, (word, freq) in enumerate(zip(words, freqs)):
            for symbol in word:
                self.symbols[symbol] += freq
            for pair in zip(word, word[1:]):
                self.pairs[pair] += freq
                self._where[pair].add(index)

    def merge(self, pair: Pair, new: Hashable) -> set[Pair]:
        """Merge ``pair`` into ``new`` in every word; return the pairs whose count changed."""
        delta: dict[Pair, int] = defaultdict(int)
        for index in self._where.pop(pair, ()):
            old = self.words[index]
            word = _merge(old, pair, new)
            n_merged = len(old) - len(word)
            if n_merged == 0:
                continue
            freq = self.freqs[index]
            for old_pair in zip(old, old[1:]):
                delta[old_pair] -= freq
            for new_pair in zip(word, word[1:]):
                delta[new_pair] += freq
                self._where[new_pair].add(index)
            self.symbols[pair[0]] -= n_merged * freq
            self.symbols[pair[1]] -= n_merged * freq
            self.symbols[new] += n_merged * freq
            self.words[index] = word
        changed = {p for p, d in delta.items() if d}
        for p in changed:
            self.pairs[p] += delta[p]
            if self.pairs[p] == 0:
                del self.pairs[p]
        return changed


def _pop_best(heap: list, key: Callable[[Pair], float]) -> Pair | None:
    """Pop entries ``(key, pair)`` until one is up to date; None when the heap runs out.

    Every change of a pair's key pushes a fresh entry, so an entry whose stored key differs from the
    pair's current key is stale and skipped (lazy deletion).
    """
    while heap:
        stored, pair = heapq.heappop(heap)
        if stored == key(pair):
            return pair
    return None


# ----------------------------------------------------------------------------------------------
# Byte-level BPE


def _compile_pattern(pattern: str | None) -> regex.Pattern | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str or None, got {type(pattern).__name__}")
    try:
        compiled = regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"pattern is not a valid regex ({error}), got {pattern!r}") from None
    if compiled.groups:
        raise ValueError(f"pattern must not contain capturing groups (use (?:...)), got {pattern!r}")
    return compiled


def _pre_tokenize(compiled: regex.Pattern | None, text: str) -> list[str]:
    """Cut ``text`` into pre-tokens; the whole text is one chunk when there is no pattern."""
    return [text] if compiled is None else compiled.findall(text)


class BPETokenizer(Tokenizer):
    """Byte-level BPE: pre-tokenize with a regex, then merge byte pairs learned by `train`.

    Ids 0..255 are the single bytes; the i-th merge ``merges[i] = (a, b)`` creates id ``256 + i``,
    whose bytes are ``vocab[a] + vocab[b]``. Merges never cross pre-token boundaries.

    Training (`train`) merges, at each step, the adjacent pair with the highest count. **Tie-break**:
    among equally frequent pairs the lexicographically smallest id pair ``(a, b)`` wins (smallest
    ``a``, then smallest ``b``), so the result depends only on the text, never on dict order or hash
    seeds. Training stops early, with a `UserWarning`, when no adjacent pair is left (every
    pre-token is a single token); ``vocab_size`` then reports the size reached.

    Encoding applies, inside each pre-token, the merge of lowest rank present until none applies;
    pre-token encodings are cached. Decoding joins the tokens' bytes and decodes them as UTF-8 with
    ``errors="replace"``: a sequence of ids that stops inside a multi-byte character (e.g. the first
    byte of an emoji alone) decodes to U+FFFD instead of raising.
    """

    def __init__(self, pattern: str | None = GPT2_PATTERN) -> None:
        self._compiled = _compile_pattern(pattern)
        self.pattern = pattern
        self._special_tokens: dict[str, int] = {}
        self._set_merges([])

    def _set_merges(self, merges: list[tuple[int, int]]) -> None:
        self.merges: list[tuple[int, int]] = merges
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(_BYTES)}
        for new_id, (a, b) in enumerate(merges, start=_BYTES):
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        self._ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self.vocab.update((i, token.encode("utf-8")) for token, i in self._special_tokens.items())

    @property
    def vocab_size(self) -> int:
        """256 byte tokens plus one token per merge, plus the special tokens.

        Precisely: one more than the largest id, the rows an embedding table needs (special ids may
        leave a gap after the merges, as in tiktoken's ``cl100k_base``; GPT-2's ``<|endoftext|>`` is
        50,256, right after its merges, for 50,257 ids).
        """
        return max([_BYTES + len(self.merges), *(i + 1 for i in self._special_tokens.values())])

    @property
    def special_tokens(self) -> dict[str, int]:
        """The registered special tokens and their ids (a copy: change them with `register_special_tokens`)."""
        return dict(self._special_tokens)

    def register_special_tokens(self, tokens: Mapping[str, int]) -> None:
        """Make each string of ``tokens`` a special token with the given id (replacing any earlier ones).

        ``tokens`` maps non-empty strings to distinct ids at or after ``256 + len(merges)``, so that
        they collide neither with the vocabulary nor with each other, e.g.
        ``{"<|endoftext|>": tokenizer.vocab_size}``. A special token is one id that no text encodes
        to unless `encode`'s ``allowed_special`` lets it; `decode` writes it as its string. An empty
        mapping removes the special tokens.
        """
        if not isinstance(tokens, Mapping):
            raise TypeError(f"tokens must be a dict of str -> int, got {type_name(tokens)}")
        first_free = _BYTES + len(self.merges)
        owners: dict[int, str] = {}
        for token, token_id in tokens.items():
            token = _check_text(token, "a special token", allow_empty=False)
            token_id = integer(token_id, f"the id of special token {token!r}")
            if token_id < first_free:
                raise ValueError(f"the id of special token {token!r} must not collide with the vocabulary "
                                 f"(ids 0..{first_free - 1} are bytes and merges), got {token_id}")
            if token_id in owners:
                raise ValueError(f"special tokens must have distinct ids, got {token_id} for both "
                                 f"{owners[token_id]!r} and {token!r}")
            owners[token_id] = token
        self._special_tokens = {token: token_id for token_id, token in owners.items()}
        self._set_merges(self.merges)

    def train(self, text: str, vocab_size: int, verbose: bool = False) -> None:
        """Learn ``vocab_size - 256`` merges from ``text`` (replacing any earlier ones).

        ``verbose`` prints every merge with the bytes it creates and its count.
        """
        text = _check_text(text, allow_empty=False)
        vocab_size = int_in_range(vocab_size, "vocab_size", _BYTES)
        self._check_below_special_ids(vocab_size)
        chunk_counts = Counter(_pre_tokenize(self._compiled, text))
        counts = _PairCounts([list(c.encode("utf-8")) for c in chunk_counts], list(chunk_counts.values()))

        def key(pair: Pair) -> int:
            return -counts.pairs.get(pair, 0)

        heap = [(key(pair), pair) for pair in counts.pairs]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        vocab = {i: bytes([i]) for i in range(_BYTES)}
        for new_id in range(_BYTES, vocab_size):
            pair = _pop_best(heap, key)
            if pair is None:
                _warn_small_vocab("BPE", new_id, vocab_size, "no adjacent pair is left to merge")
                break
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            if verbose:
                print(f"merge {new_id - _BYTES + 1}/{vocab_size - _BYTES}: {pair} -> {new_id} "
                      f"{vocab[new_id]!r} ({counts.pairs[pair]} occurrences)")
            for changed in counts.merge(pair, new_id):
                if changed in counts.pairs:
                    heapq.heappush(heap, (key(changed), changed))
            merges.append(pair)
        self._set_merges(merges)

    def _check_below_special_ids(self, vocab_size: int) -> None:
        """Raise if merges up to id ``vocab_size - 1`` would take the id of a registered special token."""
        if self._special_tokens and vocab_size > min(self._special_tokens.values()):
            token, i = min(self._special_tokens.items(), key=lambda item: item[1])
            raise ValueError(f"vocab_size must leave the special token ids free (the merges would take ids "
                             f"up to {vocab_size - 1}, and {token!r} has id {i}), got {vocab_size}")

    def _encode_chunk(self, data: bytes) -> tuple[int, ...]:
        ids = list(data)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._ranks.get(p, len(self._ranks)))
            rank = self._ranks.get(pair)
            if rank is None:
                break
            ids = _merge(ids, pair, _BYTES + rank)
        return tuple(ids)

    def encode(self, text: str, allowed_special: str | Set[str] = "none_raise") -> list[int]:
        """Token ids of ``text``; any str that UTF-8 can encode is accepted (no unknown tokens).

        ``allowed_special`` says what a registered special token written in the text becomes:
        ``"all"``: its special id; ``"none"``: plain text, encoded byte by byte like any other;
        ``"none_raise"`` (the default): a ValueError, so that text from outside (a user, a web page)
        cannot smuggle in a token such as ``<|endoftext|>``; a set of special tokens: the special id
        for those, plain text for the others. Special tokens are cut out before pre-tokenization, so
        no merge ever crosses one.
        """
        text = _check_text(text)
        special = self._allowed_specials(text, allowed_special)
        if not special:
            return self._encode_ordinary(text)
        parts = regex.split(f"({'|'.join(regex.escape(t) for t in sorted(special, key=len, reverse=True))})", text)
        ids: list[int] = []
        for position, part in enumerate(parts):  # odd positions hold the special tokens found
            ids.extend([special[part]] if position % 2 else self._encode_ordinary(part))
        return ids

    def _allowed_specials(self, text: str, allowed_special: object) -> dict[str, int]:
        """The special tokens that `encode` turns into special ids for ``allowed_special``."""
        if isinstance(allowed_special, str):
            one_of(allowed_special, "allowed_special", ALLOWED_SPECIAL_MODES)
            if allowed_special == "none_raise":
                found = [(text.find(t), t) for t in self._special_tokens if t in text]
                if found:
                    index, token = min(found)
                    raise ValueError(
                        f"text contains the special token {token!r} at index {index}; pass "
                        f"allowed_special='all' (or a set with it) to encode it as a special token, or "
                        f"'none' to encode it as plain text")
            return dict(self._special_tokens) if allowed_special == "all" else {}
        if not isinstance(allowed_special, Set):
            raise TypeError(f"allowed_special must be 'all', 'none', 'none_raise' or a set of special tokens, "
                            f"got {type_name(allowed_special)}")
        unknown = sorted(str(t) for t in allowed_special if t not in self._special_tokens)
        if unknown:
            raise ValueError(f"allowed_special must hold registered special tokens "
                             f"{sorted(self._special_tokens)}, got {unknown}")
        return {t: self._special_tokens[t] for t in allowed_special}

    def _encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text`` read as plain text: pre-tokens, then merges; no special tokens."""
        if self._compiled is None:
            return list(self._encode_chunk(text.encode("utf-8")))
        if len(self._cache) > _ENCODE_CACHE_LIMIT:
            self._cache.clear()
        ids: list[int] = []
        for chunk in _pre_tokenize(self._compiled, text):
            encoded = self._cache.get(chunk)
            if encoded is None:
                encoded = self._cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
            ids.extend(encoded)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 become U+FFFD (``errors="replace"``)."""
        ids = _check_ids(ids, self.vocab_size)
        for position, i in enumerate(ids):
            if i not in self.vocab:
                raise ValueError(f"ids[{position}] = {i} is in the gap between the merges and the special tokens")
        return b"".join(self.vocab[i] for i in ids).decode("utf-8", errors="replace")

    def save(self, path: str | Path) -> None:
        """Write the pattern, the merges (one per line) and any special tokens to a small JSON file.

        A tokenizer without special tokens writes no ``special_tokens`` entry, the same file as before
        they existed.
        """
        lines = ",\n".join(f"    [{a}, {b}]" for a, b in self.merges)
        merges = f"[\n{lines}\n  ]" if self.merges else "[]"
        special = f',\n  "special_tokens": {json.dumps(self._special_tokens)}' if self._special_tokens else ""
        Path(path).write_text(
            f'{{\n  "type": "byte-level BPE",\n  "pattern": {json.dumps(self.pattern)},\n'
            f'  "merges": {merges}{special}\n}}\n',
            encoding="utf-8",
        )

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by `save`.

        The file must name its pattern (``null`` for none) and list distinct merges, each of two ids
        that exist before it; anything else is a ValueError naming the path.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"path is not a JSON file ({error}), got {str(path)!r}") from None
        if not isinstance(data, dict) or data.get("type") != "byte-level BPE" or "merges" not in data:
            raise ValueError(f"path is not a saved BPETokenizer, got {str(path)!r}")
        if "pattern" not in data:
            raise ValueError(f"path must name its pre-tokenization pattern (null for none), got {str(path)!r}")
        tokenizer = cls(data["pattern"])
        tokenizer._set_merges(_read_merges(data["merges"], path))
        _read_special_tokens(tokenizer, data.get("special_tokens", {}), path)
        return tokenizer


def _read_merges(merges: object, path: str | Path) -> list[tuple[int, int]]:
    """The merges of a saved tokenizer, checked: a list of distinct pairs of ids that exist before each."""
    if not isinstance(merges, list):
        raise ValueError(f"merges in {str(path)!r} must be a list of [a, b] pairs, got {merges!r}")
    pairs: dict[tuple[int, int], int] = {}
    for rank, merge in enumerate(merges):
        ok = isinstance(merge, list) and len(merge) == 2 and all(
            type(i) is int and 0 <= i < _BYTES + rank for i in merge)  # JSON: true and 1.0 are no ids
        if not ok:
            raise ValueError(f"merge {rank} in {str(path)!r} must be two ids below {_BYTES + rank}, got {merge!r}")
        if tuple(merge) in pairs:
            raise ValueError(f"merge {rank} in {str(path)!r} repeats merge {pairs[tuple(merge)]}, got {merge!r}")
        pairs[merge[0], merge[1]] = rank
    return list(pairs)


def _read_special_tokens(tokenizer: BPETokenizer, tokens: object, path: str | Path) -> None:
    """Register the special tokens of a saved tokenizer (files written before they existed have none)."""
    if not isinstance(tokens, dict) or any(isinstance(i, bool) or not isinstance(i, int) for i in tokens.values()):
        raise ValueError(f"special_tokens in {str(path)!r} must map strings to int ids, got {tokens!r:.80}")
    try:
        tokenizer.register_special_tokens(tokens)
    except ValueError as error:
        raise ValueError(f"special_tokens in {str(path)!r}: {error}") from None


def naive_bpe_merges(text: str, n_merges: int, pattern: str | None = GPT2_PATTERN) -> list[tuple[int, int]]:
    """The textbook BPE training loop: recount every pair of the whole text before each merge.

    Same merges and same tie-break as `BPETokenizer.train`, but each merge costs a pass over the
    whole text; kept as the reference that tests and the benchmark compare against. Returns fewer
    than ``n_merges`` merges when no adjacent pair is left.
    """
    text = _check_text(text, allow_empty=False)
    n_merges = nonnegative_int(n_merges, "n_merges")
    chunks = [list(c.encode("utf-8")) for c in _pre_tokenize(_compile_pattern(pattern), text)]
    merges: list[tuple[int, int]] = []
    for new_id in range(_BYTES, _BYTES + n_merges):
        counts = Counter(pair for ids in chunks for pair in zip(ids, ids[1:]))
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        chunks = [_merge(ids, pair, new_id) for ids in chunks]
        merges.append(pair)
    return merges


# ----------------------------------------------------------------------------------------------
# Word-level and WordPiece


def split_words(text: str) -> list[str]:
    """Split ``text`` into words: runs of word characters (letters, marks, digits, ``_``), single
    punctuation or symbol characters, and single CJK ideographs; whitespace only separates.

    >>> split_words("Don't panic: 42 ways!")
    ['Don', "'", 't', 'panic', ':', '42', 'ways', '!']
    """
    return regex.findall(WORD_PATTERN, _check_text(text))


class _StringVocabTokenizer(Tokenizer):
    """A tokenizer whose vocabulary is a list of strings: ``vocab[id]`` is the token of ``id``."""

    def _set_vocab(self, vocab: Sequence[str]) -> None:
        if isinstance(vocab, str) or not isinstance(vocab, Sequence):
            raise TypeError(f"vocab must be a sequence of str, got {type(vocab).__name__}")
        for position, token in enumerate(vocab):
            if not isinstance(token, str):
                raise TypeError(f"vocab must contain strs, got {token!r} at position {position}")
            if not token:
                raise ValueError(f"vocab must contain non-empty strs, got {token!r} at position {position}")
        if len(set(vocab)) != len(vocab):
            duplicates = sorted(t for t, n in Counter(vocab).items() if n > 1)
            raise ValueError(f"vocab must not repeat tokens, got duplicates {duplicates[:5]}")
        if UNK_TOKEN not in vocab:
            raise ValueError(f"vocab must contain {UNK_TOKEN!r}, got {list(vocab[:5])}...")
        self.vocab: list[str] = list(vocab)
        self.token_to_id: dict[str, int] = {token: i for i, token in enumerate(self.vocab)}

    @property
    def vocab_size(self) -> int:
        """Number of tokens, ``[UNK]`` included."""
        return len(self.vocab)

    @property
    def unk_id(self) -> int:
        """Id of ``[UNK]``."""
        return self.token_to_id[UNK_TOKEN]

    @abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """Tokens (strings) of ``text``."""

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; unknown words become `unk_id`."""
        return [self.token_to_id[token] for token in self.tokenize(text)]


class WordLevelTokenizer(_StringVocabTokenizer):
    """One token per word (`split_words`), ``[UNK]`` for words outside the vocabulary.

    `train` keeps the ``vocab_size - 1`` most frequent words (ties: code-point order of the words) after
    ``[UNK]`` (id 0). Words are case-sensitive. `decode` joins the words with single spaces, so the
    original spacing is lost (``"Hi, you"`` decodes to ``"Hi , you"``).
    """

    def __init__(self, vocab: Sequence[str] | None = None) -> None:
        self._set_vocab([UNK_TOKEN] if vocab is None else vocab)

    def train(self, text: str, vocab_size: int) -> None:
        """Keep ``[UNK]`` and the ``vocab_size - 1`` most frequent words of ``text``.

        A text with fewer distinct words gives a smaller vocabulary, with a `UserWarning`.
        """
        text = _check_text(text, allow_empty=False)
        vocab_size = positive_int(vocab_size, "vocab_size")
        counts = Counter(split_words(text))
        ranked = sorted(counts, key=lambda word: (-counts[word], word))[: vocab_size - 1]
        if len(ranked) < vocab_size - 1:
            _warn_small_vocab("word-level", len(ranked) + 1, vocab_size,
                              f"the text has only {len(ranked)} distinct words")
        self._set_vocab([UNK_TOKEN, *ranked])

    def tokenize(self, text: str) -> list[str]:
        """Words of ``text``, with ``[UNK]`` in place of unknown ones."""
        return [word if word in self.token_to_id else UNK_TOKEN for word in split_words(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Words of ``ids`` joined by single spaces."""
        return " ".join(self.vocab[i] for i in _check_ids(ids, self.vocab_size))


class WordPieceTokenizer(_StringVocabTokenizer):
    """BERT's WordPiece: words (`split_words`) cut greedily into the longest pieces in the vocabulary.

    A word's first piece is written as is, the following ones with a ``##`` prefix
    (``"unaffable" -> ["un", "##aff", "##able"]``). Segmentation is greedy longest-match-first, as in
    BERT's ``WordpieceTokenizer``: take the longest vocabulary piece that starts where the previous one
    ended; if no piece fits (e.g. an unseen character), the whole word becomes ``[UNK]``. Words longer
    than ``max_input_chars_per_word`` characters also become ``[UNK]``.

    `train` builds a vocabulary bottom-up (the algorithm of Schuster & Nakajima 2012 as popularised by
    the Hugging Face course): start from ``[UNK]`` and every character seen (word-initial as is,
    inside a word with ``##``), then repeatedly merge the adjacent pair with the highest score
    ``freq(ab) / (freq(a) * freq(b))`` (pair and symbol counts over the words of the text, weighted by
    word frequency), adding the merged piece to the vocabulary. Ties go to the lexicographically
    smallest pair of strings. `decode` glues ``##`` pieces to the previous piece and separates words
    with single spaces.
    """

    def __init__(self, vocab: Sequence[str] | None = None, max_input_chars_per_word: int = 100) -> None:
        self.max_input_chars_per_word = positive_int(max_input_chars_per_word, "max_input_chars_per_word")
        self._set_vocab([UNK_TOKEN] if vocab is None else vocab)

    def train(self, text: str, vocab_size: int) -> None:
        """Build a vocabulary of ``vocab_size`` tokens from ``text`` (replacing the current one).

        ``vocab_size`` must cover ``[UNK]`` and the initial characters. When no pair is left to merge,
        training stops with a smaller vocabulary and a `UserWarning`.
        """
        text = _check_text(text, allow_empty=False)
        word_counts = Counter(split_words(text))
        if not word_counts:
            raise ValueError(f"text must contain at least one word, got {text[:40]!r}")
        words = [[word[0]] + ["##" + c for c in word[1:]] for word in word_counts]
        alphabet = sorted({symbol for word in words for symbol in word})
        vocab_size = int_in_range(vocab_size, "vocab_size", 1 + len(alphabet))
        counts = _PairCounts(words, list(word_counts.values()))
        vocab = [UNK_TOKEN, *alphabet]
        known = set(vocab)

        def key(pair: Pair) -> float:
            count = counts.pairs.get(pair, 0)
            return 0.0 if count == 0 else -count / (counts.symbols[pair[0]] * counts.symbols[pair[1]])

        pairs_with: dict[str, set[Pair]] = defaultdict(set)  # symbol -> pairs it is part of
        for pair in counts.pairs:
            pairs_with[pair[0]].add(pair)
            pairs_with[pair[1]].add(pair)
        heap = [(key(pair), pair) for pair in counts.pairs]
        heapq.heapify(heap)
        while len(vocab) < vocab_size:
            pair = _pop_best(heap, key)
            if pair is None:
                _warn_small_vocab("WordPiece", len(vocab), vocab_size, "no adjacent pair is left to merge")
                break
            new = pair[0] + pair[1][2:]  # the second symbol always carries "##"
            changed = counts.merge(pair, new)
            for p in changed:
                pairs_with[p[0]].add(p)
                pairs_with[p[1]].add(p)
            for symbol in {pair[0], pair[1], new}:  # their counts changed, so did their pairs' scores
                pairs_with[symbol] = {p for p in pairs_with[symbol] if p in counts.pairs}
                changed |= pairs_with[symbol]
            for p in changed:
                if p in counts.pairs:
                    heapq.heappush(heap, (key(p), p))
            if new not in known:
                known.add(new)
                vocab.append(new)
        self._set_vocab(vocab)

    def _tokenize_word(self, word: str) -> list[str]:
        if len(word) > self.max_input_chars_per_word:
            return [UNK_TOKEN]
        pieces = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.token_to_id:
                    break
            else:
                return [UNK_TOKEN]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of ``text``: ``##`` marks a piece that continues a word."""
        return [piece for word in split_words(text) for piece in self._tokenize_word(word)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: ``##`` pieces glued to the previous piece, words joined by spaces."""
        words: list[str] = []
        for token in (self.vocab[i] for i in _check_ids(ids, self.vocab_size)):
            if token.startswith("##") and len(token) > 2 and words:
                words[-1] += token[2:]
            else:
                words.append(token)
        return " ".join(words)


# ----------------------------------------------------------------------------------------------
# BERT's special tokens on top of a byte-level BPE

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[PAD]")


# ----------------------------------------------------------------------------------------------
# Measuring out-of-vocabulary words


def _check_word_counts(words: object) -> Mapping[str, int]:
    if not isinstance(words, Mapping) or not all(isinstance(w, str) for w in words):
        raise TypeError(f"words must map words (str) to counts, e.g. a Counter, got {type_name(words)}")
    for word, n in words.items():
        nonnegative_int(n, f"words[{word!r}]")
    if sum(words.values()) == 0:
        raise ValueError("words must count at least one occurrence")
    return words


def unk_rate(tokenizer: Tokenizer, words: Mapping[str, int]) -> float:
    """The share of word occurrences in ``words`` (word -> count) that ``tokenizer`` turns into ``[UNK]`` whole.

    ``tokenizer`` is a word-level or WordPiece tokenizer (anything with ``tokenize``); a word counts
    as unknown when its tokens are exactly ``["[UNK]"]``. Left out: words only partly unknown (none
    exist here: both tokenizers map a word they cannot cover to a single ``[UNK]``).
    """
    if not isinstance(tokenizer, Tokenizer) or not hasattr(tokenizer, "tokenize"):
        raise TypeError(f"tokenizer must be a word-level or WordPiece tokenizer, got {type_name(tokenizer)}")
    words = _check_word_counts(words)
    unknown = sum(n for word, n in words.items() if tokenizer.tokenize(word) == [UNK_TOKEN])
    return unknown / sum(words.values())


def nested_unk_rates(tokenizer: WordLevelTokenizer | WordPieceTokenizer, words: Mapping[str, int],
                     sizes: Iterable[int]) -> list[float]:
    """`unk_rate` of the vocabularies ``tokenizer.vocab[:k]``, one for each ``k`` in ``sizes``.

    Training keeps the vocabulary in order (word-level: most frequent word first; WordPiece: pieces in
    the order they were added), so a prefix is the vocabulary a smaller training run would have
    produced. Left out: byte-level BPE, whose every vocabulary spells every word.
    """
    if not isinstance(tokenizer, (WordLevelTokenizer, WordPieceTokenizer)):
        raise TypeError(f"tokenizer must be a WordLevelTokenizer or WordPieceTokenizer, got {type_name(tokenizer)}")
    sizes = [int_in_range(k, "sizes", 1, tokenizer.vocab_size) for k in sizes]
    if any(UNK_TOKEN not in tokenizer.vocab[:k] for k in sizes):
        raise ValueError(f"sizes must keep {UNK_TOKEN!r}, which is at position {tokenizer.vocab.index(UNK_TOKEN)}")
    return [unk_rate(type(tokenizer)(tokenizer.vocab[:k]), words) for k in sizes]


def wordpiece_spells(word: str, pieces: Sequence[str], vocab: Set[str]) -> bool:
    """Whether ``pieces`` are vocabulary pieces that spell ``word`` in WordPiece's form.

    The form: the first piece plain, every later piece marked ``##``, and the pieces without their
    ``##`` joined give the word. Any segmentation qualifies, not only the greedy longest-match one.
    Left out: ``[UNK]`` (it spells nothing) and special tokens.
    """
    word = _check_text(word, "word", allow_empty=False)
    if isinstance(pieces, str) or not isinstance(pieces, Sequence) or not all(isinstance(p, str) for p in pieces):
        raise TypeError(f"pieces must be a sequence of str, got {type_name(pieces)}")
    if not isinstance(vocab, Set):
        raise TypeError(f"vocab must be a set of str, got {type_name(vocab)}")
    return (bool(pieces) and all(piece in vocab for piece in pieces) and not pieces[0].startswith("##")
            and all(piece.startswith("##") for piece in pieces[1:])
            and "".join(piece.removeprefix("##") for piece in pieces) == word)


def is_byte_token(token: str) -> bool:
    """Whether ``token`` is a byte-fallback token: ``<0x`` two upper-case hex digits ``>``, e.g. ``<0xE1>``."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type_name(token)}")
    return _BYTE_TOKEN.fullmatch(token) is not None


def byte_fallback_text(tokens: Sequence[str]) -> str:
    """The text WordPiece tokens with byte fallback spell, words run together (no spaces).

    A piece contributes its text without ``##``; each run of byte tokens is decoded as UTF-8, an
    invalid sequence giving U+FFFD. Left out: word boundaries (WordPiece drops the spaces).
    """
    if isinstance(tokens, str) or not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"tokens must be a sequence of str, got {type_name(tokens)}")
    text, pending = [], b""
    for token in tokens:
        if is_byte_token(token):
            pending += bytes([int(token[3:5], 16)])
            continue
        text += [pending.decode("utf-8", errors="replace"), token.removeprefix("##")]
        pending = b""
    return "".join(text) + pending.decode("utf-8", errors="replace")


class EncoderTokenizer(Tokenizer):
    """A byte-level BPE with BERT's special tokens appended after its ids.

    With a BPE of n ids, ``[CLS] = n``, ``[SEP] = n + 1``, ``[MASK] = n + 2``, ``[PAD] = n + 3``
    (`SPECIAL_TOKENS` order) and ``vocab_size = n + 4``. No text encodes to a special id: they enter
    only through `pack`, `course_lib.objectives.mlm_mask` and padding. ``encode`` prefixes the text
    with a space, so that a word is the same token wherever it stands (a GPT-2-style BPE folds the
    space before a word into its token: "Rozi" at the start of a line and " Rozi" inside it would
    otherwise be different ids); ``decode`` drops that space again.
    """

    def __init__(self, bpe: BPETokenizer) -> None:
        if not isinstance(bpe, BPETokenizer):
            raise ValueError(f"bpe must be a BPETokenizer, got {type(bpe).__name__}")
        self.bpe = bpe
        n = bpe.vocab_size
        self.cls_id, self.sep_id, self.mask_id, self.pad_id = n, n + 1, n + 2, n + 3

    @property
    def vocab_size(self) -> int:
        """The BPE's ids plus the four special ones."""
        return self.bpe.vocab_size + len(SPECIAL_TOKENS)

    @property
    def special_ids(self) -> tuple[int, int, int, int]:
        """The ids of [CLS], [SEP], [MASK], [PAD]."""
        return self.cls_id, self.sep_id, self.mask_id, self.pad_id

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``" " + text``: every word with its leading space, as inside a document."""
        return self.bpe.encode(" " + text)

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """One string per id: a special token's name, or the BPE token's text."""
        return [self._special_name(i) or self.bpe.decode([i]) for i in self._checked(ids)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids, special tokens written by name (" [MASK]"), without the leading space."""
        ids, pieces, run = self._checked(ids), [], []
        for i in ids + [None]:
            name = None if i is None else self._special_name(i)
            if i is not None and name is None:
                run.append(i)
                continue
            pieces.append(self.bpe.decode(run))
            run = []
            if name is not None:
                pieces.append(" " + name)
        return "".join(pieces).removeprefix(" ")

    def pack(self, first: Sequence[int], second: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """BERT's input for one or two segments of ids: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

        Returns (ids, segment_ids): segment 0 for [CLS], A and its [SEP]; segment 1 for B and the last
        [SEP]. A segment holds BPE ids and [MASK]s only.
        """
        first = self._checked(first, segment=True, name="first")
        ids, segments = [self.cls_id, *first, self.sep_id], [0] * (len(first) + 2)
        if second is not None:
            second = self._checked(second, segment=True, name="second")
            ids += [*second, self.sep_id]
            segments += [1] * (len(second) + 1)
        return ids, segments

    def _special_name(self, i: int) -> str | None:
        offset = i - self.bpe.vocab_size
        return SPECIAL_TOKENS[offset] if offset >= 0 else None

    def _checked(self, ids: Iterable[int], segment: bool = False, name: str = "ids") -> list[int]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.vocab_size:
                raise ValueError(f"{name} must hold ids in [0, {self.vocab_size}), got {i!r}")
            if segment and i in (self.cls_id, self.sep_id, self.pad_id):
                raise ValueError(f"{name} must hold BPE ids and [MASK] only, got {self._special_name(i)} ({i})")
        return ids
