"""The answer cache: per exact set of principals, invalidated by every change to the index."""

from __future__ import annotations

import json

import pytest

from answers import cache
from answers import services as answering
from answers.models import Answer
from connectors import services as connectors
from identity.selectors import principals_for
from retrieval import services as retrieval_services
from search.types import DocumentAcl
from tests.console.conftest import BUDGET_QUESTION, auth, finance_document, public_document, write_manifest

pytestmark = pytest.mark.django_db


def ask(user, question=BUDGET_QUESTION, **kwargs):
    return answering.ask(question, principals=principals_for(user), user=user, **kwargs)


def cache_status(result) -> str | None:
    return Answer.objects.get(id=result.answer_id).timings.get("cache")


def cited(result) -> set[str]:
    return {c.document_id for c in result.citations}


def test_users_with_different_access_never_share_a_cached_answer(corpus, alice, bob):
    _, source = corpus
    budget, kitchen = finance_document(source).id, public_document(source).id

    first = ask(alice)
    assert not first.refused and "40,000" in first.text and cited(first) == {budget}
    assert cache_status(first) == "miss"

    # bob asks the very same question right after: his own answer, from what he may read; never alice's.
    other = ask(bob)
    assert cache_status(other) == "miss"
    assert other.refused and budget not in cited(other) and "40,000" not in other.text
    assert budget not in {c.document_id for c in other.nearest} and kitchen in {c.document_id for c in other.nearest}

    repeat = ask(alice, "  what IS the travel budget   for 2025? ")  # same question, normalised
    assert cache_status(repeat) == "hit"
    assert (repeat.text, repeat.refused, cited(repeat)) == (first.text, False, {budget})
    assert repeat.answer_id != first.answer_id  # still recorded, as its own row

    again = ask(bob)
    assert cache_status(again) == "hit" and again.refused and budget not in cited(again) and "40,000" not in again.text

    rows = Answer.objects.filter(question__icontains="travel budget").order_by("created_at")
    assert [(r.user.username, r.timings["cache"]) for r in rows] == [
        ("alice", "miss"), ("bob", "miss"), ("alice", "hit"), ("bob", "hit")]
    hit_row = Answer.objects.get(id=repeat.answer_id)
    assert hit_row.citations == Answer.objects.get(id=first.answer_id).citations
    assert hit_row.retrieved == Answer.objects.get(id=first.answer_id).retrieved
    assert "total" in hit_row.timings and "compose" not in hit_row.timings


def test_the_key_depends_on_the_exact_principals():
    question, query = BUDGET_QUESTION, BUDGET_QUESTION
    one = cache.answer_cache_key(question, query, frozenset({"citewise:user:alice", "group:finance"}))
    same = cache.answer_cache_key(question.upper(), query, frozenset({"group:finance", "citewise:user:alice"}))
    fewer = cache.answer_cache_key(question, query, frozenset({"citewise:user:alice"}))
    more = cache.answer_cache_key(question, query, frozenset({"citewise:user:alice", "group:finance", "x"}))
    assert one == same and len({one, fewer, more}) == 3


def test_a_permission_sync_that_revokes_invalidates_cached_answers(corpus, alice):
    folder, source = corpus
    budget = finance_document(source).id
    assert cited(ask(alice)) == {budget}
    assert cache_status(ask(alice)) == "hit"
    principals_before = principals_for(alice)

    # The document's ACL changes (alice stays in group:finance, so only the index version can tell).
    write_manifest(folder, finance_members=["email:alice@corp.example"], finance_readers=["group:executives"])
    report = connectors.sync_permissions(source)
    assert report.changed == 1 and principals_for(alice) == principals_before

    after = ask(alice)
    assert cache_status(after) == "miss"
    assert after.refused and budget not in cited(after) and "40,000" not in after.text


def test_a_group_membership_revocation_is_never_answered_from_the_cache(corpus, alice):
    folder, source = corpus
    assert cited(ask(alice)) == {finance_document(source).id}
    write_manifest(folder, finance_members=[])
    connectors.sync_permissions(source)
    after = ask(alice)
    assert cache_status(after) == "miss" and after.refused and "40,000" not in after.text


def test_a_content_sync_invalidates_cached_answers(corpus, alice):
    folder, source = corpus
    assert "40,000" in ask(alice).text
    (folder / "finance" / "travel-budget.md").write_text(
        "# Travel budget\n\nThe company travel budget for 2025 is 55,000 euros, approved by the finance "
        "committee in January.\n")
    connectors.sync_source(source)
    after = ask(alice)
    assert cache_status(after) == "miss" and "55,000" in after.text


def test_an_acl_change_written_through_retrieval_invalidates_cached_answers(corpus, alice):
    # No connector and no sync time is involved: only answers' receiver of retrieval's index_changed can notice.
    _, source = corpus
    budget = finance_document(source).id
    assert cache_status(ask(alice)) == "miss"
    assert cache_status(ask(alice)) == "hit"
    retrieval_services.update_acls([(budget, DocumentAcl(principals=frozenset({"group:nobody"}), status="ok"))],
                                   backend=connectors.source_backend(source))
    after = ask(alice)
    assert cache_status(after) == "miss"
    assert budget not in cited(after) and "40,000" not in after.text


def test_bump_index_version_invalidates_and_a_zero_ttl_disables(corpus, alice, settings):
    assert cache_status(ask(alice)) == "miss"
    assert cache_status(ask(alice)) == "hit"
    cache.bump_index_version()
    assert cache_status(ask(alice)) == "miss"

    settings.CITEWISE = settings.CITEWISE.replace(answer_cache_ttl_s=0)
    first, second = ask(alice), ask(alice)
    assert cache_status(first) is None and cache_status(second) is None
    assert first.text == second.text


def test_a_cache_hit_over_the_api_is_still_recorded_and_answered_in_full(client, corpus, alice):
    def post():
        response = client.post("/api/v1/ask", json.dumps({"question": BUDGET_QUESTION}),
                               content_type="application/json", headers=auth(alice))
        assert response.status_code == 200, response.content
        return response.json()

    first, second = post(), post()
    assert second["answer_id"] != first["answer_id"]
    assert (second["answer"], second["citations"], second["refused"]) == (
        first["answer"], first["citations"], first["refused"])
    assert Answer.objects.get(id=second["answer_id"]).timings["cache"] == "hit"
    assert Answer.objects.filter(user=alice).count() == 2


def redis_cache(url: str, prefix: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                        "KEY_PREFIX": prefix}}


def test_the_redis_cache_backend_serves_hits(corpus, alice, settings):
    import uuid

    import redis

    prefix = f"citewise-test-{uuid.uuid4().hex[:8]}"
    settings.CACHES = redis_cache("redis://127.0.0.1:6379/15", prefix)
    try:
        assert cache_status(ask(alice)) == "miss"
        assert cache_status(ask(alice)) == "hit"
        client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
        assert list(client.scan_iter(match=f"{prefix}:*"))
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()


def test_a_cache_outage_is_a_miss_never_an_error(corpus, alice, settings):
    settings.CACHES = redis_cache("redis://127.0.0.1:1/0", "citewise-down")  # nothing listens on port 1
    cache.bump_index_version()  # logged, not raised
    first, second = ask(alice), ask(alice)
    assert "40,000" in first.text and first.text == second.text
    assert cache_status(first) == cache_status(second) == "unavailable"
