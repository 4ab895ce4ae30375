"""The synthetic corpus of benchmarks/scale.py: SciFact sentences recombined into chunks, with enterprise-like ACLs.

Deterministic for a seed. Only the standard library, numpy and the product's sentence splitter are imported, so
the corpus can be rebuilt anywhere the repository is (the vector check runs it on another machine).

- Sentences: every sentence of every SciFact abstract (retrieval.chunking.split_sentences, the splitter the
  product chunks with), once each, in corpus order; sentences under 4 words are dropped.
- Chunks: sentences drawn from a shuffled stream of all of them (reshuffled when used up) until the chunk holds
  50-130 words (uniform), about the product's 200-token chunks. Consecutive sentences of a chunk come from
  different abstracts, so no chunk repeats an abstract; each sentence appears in ~8 chunks at 100k.
- Documents: 1 to 20 consecutive chunks (mean ~4), titled with the SciFact title of their first sentence.
- Principals: 10,000, of which 8,000 users (`user:N`) and 2,000 groups (`group:N`).
- ACLs: 10% of documents public; 60% shared with 1-3 groups, which are drawn with Zipf-like popularity (a few
  groups, "all staff" or "engineering", are on many documents), plus their owner; 20% shared with 2-6 users,
  sometimes a group too; 9% private to one user; 1% whose ACL could not be read (status "error": nobody sees them).
- Readers: one with 1 principal (a user who owns documents), one with 1,000 (a user in 999 groups, drawn with the
  same popularity: someone in most large groups).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USERS = 8_000
GROUPS = 2_000
SEED = 16


@dataclass(frozen=True)
class Sentences:
    texts: list[str]
    titles: list[str]  # SciFact titles, one per abstract
    title_of: list[int]  # sentence -> index in titles
    words: list[int]  # sentence -> word count


@dataclass(frozen=True)
class Acl:
    principals: tuple[str, ...]
    public: bool
    status: str


@dataclass(frozen=True)
class SyntheticDocument:
    document_id: str
    title: int  # index in Sentences.titles
    acl: Acl
    chunks: tuple[tuple[int, ...], ...]  # each chunk: indices in Sentences.texts


def load_sentences(dataset: Path) -> Sentences:
    from retrieval.chunking import split_sentences

    texts: list[str] = []
    titles: list[str] = []
    title_of: list[int] = []
    seen: set[str] = set()
    with open(dataset / "corpus.jsonl", encoding="utf-8") as corpus:
        for line in corpus:
            record = json.loads(line)
            titles.append(record["title"].strip())
            abstract = record["text"]
            for start, end in split_sentences(abstract):
                sentence = " ".join(abstract[start:end].split())
                if len(sentence.split()) < 4 or sentence in seen:
                    continue
                seen.add(sentence)
                texts.append(sentence)
                title_of.append(len(titles) - 1)
    return Sentences(texts, titles, title_of, [len(t.split()) for t in texts])


def _sentence_stream(count: int, rng: random.Random) -> Iterator[int]:
    while True:
        order = list(range(count))
        rng.shuffle(order)
        yield from order


class _Zipf:
    """Draws 0..n-1 with probability proportional to 1 / (rank + 1) ** exponent."""

    def __init__(self, n: int, exponent: float, rng: random.Random) -> None:
        self._rng = rng
        self._cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(n)))

    def draw(self) -> int:
        return bisect.bisect_left(self._cumulative, self._rng.random() * self._cumulative[-1])


def _acl(rng: random.Random, groups: _Zipf) -> Acl:
    owner = f"user:{rng.randrange(USERS)}"
    kind = rng.random()
    if kind < 0.10:
        return Acl((), True, "ok")
    if kind < 0.70:
        chosen = {f"group:{groups.draw()}" for _ in range(rng.randint(1, 3))}
        return Acl(tuple(sorted(chosen | {owner})), False, "ok")
    if kind < 0.90:
        users = {f"user:{rng.randrange(USERS)}" for _ in range(rng.randint(1, 5))} | {owner}
        if rng.random() < 0.3:
            users.add(f"group:{groups.draw()}")
        return Acl(tuple(sorted(users)), False, "ok")
    if kind < 0.99:
        return Acl((owner,), False, "ok")
    return Acl((owner,), False, "error")


_CHUNKS_PER_DOCUMENT = [1] * 30 + [2] * 20 + [3] * 15 + [4] * 10 + [5, 6, 7, 8] * 4 + list(range(9, 21)) * 1


def synthesize(sentences: Sentences, chunk_count: int, *, seed: int = SEED) -> list[SyntheticDocument]:
    """Documents holding exactly `chunk_count` chunks. The corpus for a smaller count is a prefix of a larger one's
    (the last document may hold fewer chunks), so the sizes measured nest."""
    rng = random.Random(seed)
    acl_rng = random.Random(seed + 1)
    groups = _Zipf(GROUPS, 1.0, acl_rng)
    stream = _sentence_stream(len(sentences.texts), rng)
    documents: list[SyntheticDocument] = []
    made = 0
    while made < chunk_count:
        chunks = []
        for _ in range(min(rng.choice(_CHUNKS_PER_DOCUMENT), chunk_count - made)):
            target, words, chunk = rng.randint(50, 130), 0, []
            while words < target:
                sentence = next(stream)
                chunk.append(sentence)
                words += sentences.words[sentence]
            chunks.append(tuple(chunk))
        made += len(chunks)
        documents.append(SyntheticDocument(f"scale-{len(documents):06d}", sentences.title_of[chunks[0][0]],
                                           _acl(acl_rng, groups), tuple(chunks)))
    return documents


def chunk_text(sentences: Sentences, chunk: tuple[int, ...]) -> str:
    return " ".join(sentences.texts[i] for i in chunk)


def readers(*, seed: int = SEED) -> dict[str, frozenset[str]]:
    """The two askers measured: 1 principal, and 1,000 (one user and 999 groups)."""
    rng = random.Random(seed + 2)
    groups = _Zipf(GROUPS, 1.0, rng)
    chosen: set[str] = set()
    while len(chosen) < 999:
        chosen.add(f"group:{groups.draw()}")
    return {"1 principal": frozenset({f"user:{rng.randrange(USERS)}"}),
            "1000 principals": frozenset(chosen | {f"user:{rng.randrange(USERS)}"})}


def load_queries(dataset: Path, count: int, *, seed: int = SEED) -> list[str]:
    """SciFact's judged test queries first (shuffled), then the others, `count` in all."""
    judged = set()
    qrels = dataset / "qrels" / "test.tsv"
    if qrels.exists():
        judged = {line.split("\t")[0] for line in qrels.read_text(encoding="utf-8").splitlines()[1:]}
    queries = [json.loads(line) for line in (dataset / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    first = [q["text"] for q in queries if q["_id"] in judged]
    rest = [q["text"] for q in queries if q["_id"] not in judged]
    rng = random.Random(seed + 3)
    rng.shuffle(first)
    rng.shuffle(rest)
    return (first + rest)[:count]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
