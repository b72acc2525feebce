"""The host's rules for turning a prompt into 77-token CLIP chunks, and where an embedding's vectors go in them.

Training must condition the UNet exactly as txt2img will later do from the same words, so this follows A1111
v1.10.1 with default settings (``prompt_parser.parse_prompt_attention``, ``sd_hijack_clip.TextConditionalModel.
tokenize_line`` / ``process_tokens``, emphasis "Original", ``comma_padding_backtrack`` 20) step by step:

1. The prompt is split into weighted fragments: ``(a)`` x1.1, ``[a]`` /1.1, ``(a:1.3)``, ``\\(`` a literal
   bracket, ``BREAK`` a forced chunk break.
2. Each fragment is tokenized on its own, without BOS/EOS.
3. Tokens fill chunks of 75. The embedding's name (its token ids) becomes ``n`` slots for its vectors, never split
   across two chunks. When a chunk is full and a comma is among its last 20 tokens, the words after the comma move
   on to the next chunk; slots move with them but their splice position stays behind (a host quirk, kept because
   txt2img has it too).
4. A chunk is BOS + 75 tokens (padded with EOS) + EOS; SD2 then pads everything after the first EOS with id 0.
5. The prompts of a batch are padded with empty chunks to the same chunk count.

This module is plain Python; running the text encoder on the chunks is the backend's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError

#: Prompt tokens per chunk; BOS and EOS make it CLIP's 77.
CHUNK_LENGTH = 75
#: The host's ``comma_padding_backtrack`` default: how far back a comma may be to move the words after it.
COMMA_BACKTRACK = 20
ROUND_BRACKET = 1.1
SQUARE_BRACKET = 1 / 1.1
BREAK = ("BREAK", -1.0)

_ATTENTION = re.compile(
    r"""
    \\\(|\\\)|\\\[|\\]|\\\\|\\|  # an escaped bracket or backslash: literal text; a lone backslash: nothing
    \(|\[|                       # open a bracket
    :\s*([+-]?[.\d]+)\s*\)|      # ":1.3)": close a round bracket with an explicit weight
    \)|]|                        # close a bracket
    [^\\()\[\]:]+|               # plain text
    :
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)

Tokenize = Callable[[list[str]], list[list[int]]]


def parse_attention(text: str) -> list[tuple[str, float]]:
    """The prompt as ``(text, weight)`` fragments, with the host's bracket syntax; ``BREAK`` is ``("BREAK", -1)``.

    Unclosed brackets weigh everything after them; neighbouring fragments of equal weight are merged (which
    matters: each fragment is tokenized separately).
    """
    fragments: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def weigh_from(start: int, factor: float) -> None:
        for fragment in fragments[start:]:
            fragment[1] *= factor

    for match in _ATTENTION.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            fragments.append([piece[1:], 1.0])
        elif piece == "(":
            open_round.append(len(fragments))
        elif piece == "[":
            open_square.append(len(fragments))
        elif weight is not None and open_round:
            weigh_from(open_round.pop(), _weight(weight, text))
        elif piece == ")" and open_round:
            weigh_from(open_round.pop(), ROUND_BRACKET)
        elif piece == "]" and open_square:
            weigh_from(open_square.pop(), SQUARE_BRACKET)
        else:
            for index, part in enumerate(_BREAK.split(piece)):
                if index:
                    fragments.append(list(BREAK))
                fragments.append([part, 1.0])
    for start in open_round:
        weigh_from(start, ROUND_BRACKET)
    for start in open_square:
        weigh_from(start, SQUARE_BRACKET)

    merged: list[list] = []
    for piece, weight in fragments or [["", 1.0]]:
        if merged and merged[-1][1] == weight:
            merged[-1][0] += piece
        else:
            merged.append([piece, weight])
    return [(piece, weight) for piece, weight in merged]


def _weight(number: str, prompt: str) -> float:
    try:
        return float(number)
    except ValueError:
        raise UserError(f"bad emphasis weight {number!r} in prompt {prompt!r}") from None


@dataclass(frozen=True)
class SpecialTokens:
    """The token ids the host builds chunks with."""

    bos: int
    eos: int
    pad: int  # SD1 pads with EOS; SD2 (OpenCLIP) with 0
    comma: int | None  # ",</w>": where long prompts may be broken


@dataclass(frozen=True)
class Chunk:
    """One 77-token chunk: token ids, the emphasis weight of each, and where the embedding's vectors go."""

    tokens: list[int]
    multipliers: list[float]
    #: Index into ``tokens`` (BOS included) of the first of the ``n`` rows to replace, once per occurrence.
    vector_starts: list[int]


def chunk_prompts(prompts: list[str], tokenize: Tokenize, name_tokens: list[int], n_vectors: int,
                  special: SpecialTokens) -> list[list[Chunk]]:
    """Chunks of every prompt, padded with empty chunks to the same count (the host encodes a batch chunk by
    chunk). ``name_tokens`` are the embedding name's token ids; each occurrence takes ``n_vectors`` slots."""
    if not 1 <= n_vectors <= CHUNK_LENGTH:
        raise UserError(f"an embedding needs 1 to {CHUNK_LENGTH} vectors, not {n_vectors}")
    per_prompt = [_chunk_prompt(prompt, tokenize, name_tokens, n_vectors, special) for prompt in prompts]
    count = max(len(chunks) for chunks in per_prompt)
    return [chunks + [empty_chunk(special)] * (count - len(chunks)) for chunks in per_prompt]


def empty_chunk(special: SpecialTokens) -> Chunk:
    return _finish([], [], [], special)


def _chunk_prompt(prompt: str, tokenize: Tokenize, name_tokens: list[int], n_vectors: int,
                  special: SpecialTokens) -> list[Chunk]:
    fragments = parse_attention(prompt)
    writer = _ChunkWriter(special)
    for tokens, fragment in zip(tokenize([text for text, _ in fragments]), fragments):
        if fragment == BREAK:
            writer.close()
            continue
        weight = fragment[1]
        position = 0
        while position < len(tokens):
            writer.make_room(tokens[position])
            if name_tokens and tokens[position:position + len(name_tokens)] == name_tokens:
                writer.add_vectors(n_vectors, weight)
                position += len(name_tokens)
            else:
                writer.add(tokens[position], weight)
                position += 1
    if writer.tokens or not writer.chunks:
        writer.close()
    return writer.chunks


class _ChunkWriter:
    """The chunk being filled (the host's ``tokenize_line`` state), and the chunks already closed."""

    def __init__(self, special: SpecialTokens):
        self.special = special
        self.chunks: list[Chunk] = []
        self._open([], [])

    def _open(self, tokens: list[int], multipliers: list[float]) -> None:
        self.tokens, self.multipliers = tokens, multipliers
        self.vector_starts: list[int] = []
        self.last_comma = -1

    def close(self) -> None:
        self.chunks.append(_finish(self.tokens, self.multipliers, self.vector_starts, self.special))
        self._open([], [])

    def make_room(self, token: int) -> None:
        """The host's checks before each prompt position: remember commas; when the chunk is full, move the words
        after a recent comma on to a new chunk, or else just start a new one."""
        if token == self.special.comma:
            self.last_comma = len(self.tokens)
        elif (len(self.tokens) == CHUNK_LENGTH and self.last_comma != -1
              and len(self.tokens) - self.last_comma <= COMMA_BACKTRACK):
            cut = self.last_comma + 1
            moved = self.tokens[cut:], self.multipliers[cut:]
            del self.tokens[cut:], self.multipliers[cut:]
            self.close()  # the splice positions stay with the closed chunk, as in the host
            self._open(*moved)
        if len(self.tokens) == CHUNK_LENGTH:
            self.close()

    def add(self, token: int, weight: float) -> None:
        self.tokens.append(token)
        self.multipliers.append(weight)

    def add_vectors(self, count: int, weight: float) -> None:
        if len(self.tokens) + count > CHUNK_LENGTH:
            self.close()
        self.vector_starts.append(len(self.tokens) + 1)  # +1: the BOS the chunk will start with
        self.tokens += [0] * count
        self.multipliers += [weight] * count


def _finish(tokens: list[int], multipliers: list[float], vector_starts: list[int], special: SpecialTokens) -> Chunk:
    padding = CHUNK_LENGTH - len(tokens)
    ids = [special.bos, *tokens, *[special.eos] * padding, special.eos]
    weights = [1.0, *multipliers, *[1.0] * padding, 1.0]
    if special.pad != special.eos:
        after_end = ids.index(special.eos) + 1
        ids[after_end:] = [special.pad] * (len(ids) - after_end)
    return Chunk(tokens=ids, multipliers=weights, vector_starts=list(vector_starts))
