"""Usage analytics from the stored records alone (answers, feedback): questions per day and surface, votes, refusals
and the questions most often left unanswered, flags by reason, latency per stage, LLM tokens and cost per day."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from answers.models import Answer, Feedback

# Percentiles and unanswered questions are computed from at most this many of the period's latest answers.
MAX_ANSWERS_READ = 20_000
TOP_UNANSWERED = 10


@dataclass
class Analytics:
    days: list[date]
    questions: dict[date, dict[str, int]]  # day -> surface -> questions asked
    surfaces: list[str]
    votes: dict[date, dict[str, int]]  # day -> "up" / "down" -> votes given on that day's answers
    refused: dict[date, int]
    unanswered: list[tuple[str, int]]  # (question as most often asked, times) for the questions refused most
    flags_by_reason: list[tuple[str, int]]
    latency_ms: dict[str, tuple[float, float, int]]  # stage -> (p50, p95, answers measured)
    tokens: dict[date, tuple[int, int, Decimal]]  # day -> (input tokens, output tokens, cost in USD)
    totals: dict[str, float] = field(default_factory=dict)


def _question_key(question: str) -> str:
    return re.sub(r"[\s?.!]+$", "", " ".join(question.casefold().split()))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of the values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def analytics(days: int = 30, *, now: datetime | None = None) -> Analytics:
    """The last `days` days, today included."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    answers = Answer.objects.filter(created_at__gte=start, created_at__lte=now)
    day_list = [first + timedelta(days=n) for n in range(days)]

    questions: dict[date, dict[str, int]] = defaultdict(dict)
    surfaces: set[str] = set()
    for row in answers.annotate(day=TruncDate("created_at")).values("day", "surface").annotate(n=Count("id")):
        questions[row["day"]][row["surface"]] = row["n"]
        surfaces.add(row["surface"])

    votes: dict[date, dict[str, int]] = defaultdict(dict)
    feedback = Feedback.objects.filter(answer__created_at__gte=start, answer__created_at__lte=now)
    for row in (feedback.filter(kind__in=("up", "down")).annotate(day=TruncDate("answer__created_at"))
                .values("day", "kind").annotate(n=Count("id"))):
        votes[row["day"]][row["kind"]] = row["n"]

    refused = {row["day"]: row["n"] for row in answers.filter(refused=True).annotate(day=TruncDate("created_at"))
               .values("day").annotate(n=Count("id"))}

    recent = list(answers.order_by("-created_at").values("question", "refused", "timings")[:MAX_ANSWERS_READ])
    asked_as: dict[str, Counter] = defaultdict(Counter)
    for answer in recent:
        if answer["refused"]:
            asked_as[_question_key(answer["question"])][" ".join(answer["question"].split())] += 1
    unanswered = sorted(((forms.most_common(1)[0][0], sum(forms.values())) for forms in asked_as.values()),
                        key=lambda pair: (-pair[1], pair[0]))[:TOP_UNANSWERED]

    by_stage: dict[str, list[float]] = defaultdict(list)
    for answer in recent:
        for stage, milliseconds in (answer["timings"] or {}).items():
            if isinstance(milliseconds, int | float):
                by_stage[stage].append(float(milliseconds))
    latency = {stage: (percentile(values, 0.5), percentile(values, 0.95), len(values))
               for stage, values in sorted(by_stage.items())}

    reasons = dict(Feedback.Reason.choices)
    flags = [(reasons.get(row["reason"], row["reason"] or "—"), row["n"]) for row in
             feedback.filter(kind="flag").values("reason").annotate(n=Count("id")).order_by("-n", "reason")]

    tokens = {row["day"]: (row["input"] or 0, row["output"] or 0, row["cost"] or Decimal(0)) for row in
              answers.annotate(day=TruncDate("created_at")).values("day")
              .annotate(input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost_usd"))}

    counted = answers.aggregate(total=Count("id"), refused=Count("id", filter=Q(refused=True)))
    up = sum(v.get("up", 0) for v in votes.values())
    down = sum(v.get("down", 0) for v in votes.values())
    totals = {"questions": counted["total"], "refused": counted["refused"], "up": up, "down": down,
              "helpful_rate": up / (up + down) if up + down else 0.0,
              "refusal_rate": counted["refused"] / counted["total"] if counted["total"] else 0.0,
              "flags": sum(n for _, n in flags), "cost_usd": float(sum((t[2] for t in tokens.values()), Decimal(0)))}
    return Analytics(day_list, dict(questions), sorted(surfaces), dict(votes), refused, unanswered, flags, latency,
                     tokens, totals)
