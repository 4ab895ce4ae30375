"""Console analytics, from the stored answers and feedback alone: every figure checked against records made with
known days, surfaces, votes, refusals, flags, timings and tokens; staff only, and audited."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from answers.analytics import analytics, percentile
from answers.models import Answer, Conversation, Feedback
from audit.models import AuditEvent
from tests.console.conftest import make_user

pytestmark = pytest.mark.django_db


def answered(user, question: str, *, surface: str = "web", days_ago: int = 0, refused: bool = False,
             timings: dict | None = None, tokens: tuple[int, int] = (0, 0), cost: str = "0") -> Answer:
    conversation = Conversation.objects.create(user=user, surface=surface)
    answer = Answer.objects.create(conversation=conversation, user=user, surface=surface, question=question,
                                   refused=refused, status="refused" if refused else "answered",
                                   timings=timings or {}, input_tokens=tokens[0], output_tokens=tokens[1],
                                   cost_usd=Decimal(cost))
    Answer.objects.filter(pk=answer.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return answer


@pytest.fixture
def records(db):
    alice, bob = make_user("alice"), make_user("bob")
    first = answered(alice, "When is the espresso machine descaled?", timings={"retrieve": 10.0, "compose": 100.0},
                     tokens=(1000, 200), cost="0.0125")
    answered(bob, "When is the espresso machine descaled?", surface="slack", timings={"retrieve": 30.0})
    for asker, asked in ((alice, "Is there a sauna?"), (bob, "is there a  sauna"), (bob, "IS THERE A SAUNA?!")):
        answered(asker, asked, surface="teams", refused=True, timings={"retrieve": 20.0})
    answered(alice, "Where do I park?", refused=True, days_ago=2)
    old = answered(alice, "An old question", days_ago=40, tokens=(5000, 5000), cost="9")
    Feedback.objects.create(answer=first, user=alice, kind="up")
    Feedback.objects.create(answer=first, user=bob, kind="down")
    Feedback.objects.create(answer=first, user=alice, kind="flag", reason="wrong")
    Feedback.objects.create(answer=first, user=bob, kind="flag", reason="wrong")
    Feedback.objects.create(answer=old, user=alice, kind="flag", reason="harmful")
    return first


def test_the_figures_come_from_the_records_of_the_period(records):
    figures = analytics(7)
    today, two_days_ago = figures.days[-1], figures.days[-3]
    assert len(figures.days) == 7
    assert figures.questions[today] == {"web": 1, "slack": 1, "teams": 3}
    assert figures.questions[two_days_ago] == {"web": 1}
    assert figures.totals["questions"] == 6 and figures.totals["refused"] == 4  # the 40-day-old one is out
    assert figures.votes[today] == {"up": 1, "down": 1} and figures.totals["helpful_rate"] == 0.5
    assert figures.refused == {today: 3, two_days_ago: 1}
    # Asked three ways, counted as one question, shown as asked most often... each form once: the first in order.
    assert figures.unanswered[0][1] == 3 and figures.unanswered[0][0].casefold().startswith("is there a")
    assert figures.unanswered[1] == ("Where do I park?", 1)
    assert figures.flags_by_reason == [("Wrong or outdated", 2)]
    assert figures.latency_ms["retrieve"] == (20.0, 30.0, 5) and figures.latency_ms["compose"] == (100.0, 100.0, 1)
    assert figures.tokens[today] == (1000, 200, Decimal("0.0125"))
    assert analytics(90).totals["questions"] == 7 and analytics(90).flags_by_reason[-1] == ("Harmful or sensitive", 1)


def test_percentiles_are_nearest_rank():
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0], 0.95) == 5.0
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)


def test_the_page_shows_the_figures_and_charts_to_staff_only_and_is_audited(client, records, admin_user):
    assert client.get("/admin/analytics/").status_code == 302  # to the console's sign-in
    client.force_login(make_user("carol"))
    assert client.get("/admin/analytics/").status_code == 403  # signed in, not staff
    client.force_login(admin_user)
    response = client.get("/admin/analytics/", {"days": 7})
    page = response.content.decode()
    assert response.status_code == 200 and "Citewise console" in page
    assert '<strong id="total-questions">6</strong>' in page and '<strong id="total-flags">2</strong>' in page
    assert page.count('<svg viewBox="0 0 720 220" role="img"') == 5
    assert 'aria-label="Questions per day: slack 1 in all; teams 3 in all; web 2 in all"' in page
    assert "Where do I park?" in page and "Wrong or outdated" in page and "An old question" not in page
    event = AuditEvent.objects.get(action="admin.view", object_type="console.analytics")
    assert event.actor == admin_user and event.detail["days"] == 7
    assert client.get("/admin/analytics/", {"days": "9999"}).context["days"] == 30  # only the offered periods
