"""Answer-unit vectors stored with a chunk, so answering embeds only the question.

The answer scorer embeds short strings made from a chunk (retrieval/units.py::embedding_texts). Indexing embeds
them once and stores them with the chunk as one opaque blob, keyed by a truncated sha256 of each exact string: a
lookup by string stays correct whatever the strings become, and a string not found is embedded at question time.

Blob layout (little-endian): format byte, unit count n (uint32), n keys of KEY_BYTES each, then n vectors of
float16. The backends store the blob as given and never read it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

import numpy as np

FORMAT = 1
KEY_BYTES = 8  # a chunk holds tens of units: 64 bits never collide among them
_HEADER = struct.Struct("<BI")


def unit_key(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:KEY_BYTES]


def encode_unit_vectors(texts: Sequence[str], vectors: np.ndarray) -> bytes:
    """One chunk's unit strings and their vectors as a blob; b"" when there are none."""
    if len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
    if not texts:
        return b""
    keys = b"".join(unit_key(text) for text in texts)
    return _HEADER.pack(FORMAT, len(texts)) + keys + np.asarray(vectors, dtype="<f2").tobytes()


def decode_unit_vectors(blob: bytes) -> Mapping[bytes, np.ndarray]:
    """The vectors of a blob (float32) by unit_key; empty for b"" and for a layout this code does not know, so
    the scorer embeds those units again rather than misread them."""
    if len(blob) < _HEADER.size:
        return {}
    version, count = _HEADER.unpack_from(blob)
    body = len(blob) - _HEADER.size - count * KEY_BYTES
    if version != FORMAT or count == 0 or body <= 0 or body % (2 * count):
        return {}
    keys_end = _HEADER.size + count * KEY_BYTES
    vectors = np.frombuffer(blob, dtype="<f2", offset=keys_end).reshape(count, -1).astype(np.float32)
    return {blob[i:i + KEY_BYTES]: vector
            for i, vector in zip(range(_HEADER.size, keys_end, KEY_BYTES), vectors, strict=True)}
