"""The console's dashboards beside the admin's model pages: analytics. Staff only (admin_view), every view audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from answers.analytics import analytics
from audit import services as audit
from console.charts import stacked_bars

PERIODS = (7, 30, 90)


def analytics_page(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("days", "30")
    days = int(raw) if raw.isdigit() and int(raw) in PERIODS else 30
    figures = analytics(days)
    audit.record(request.user, "admin.view", object_type="console.analytics", surface="admin",
                 detail={"path": request.get_full_path(), "days": days})
    labels = [day.isoformat() for day in figures.days]
    rows: list[dict[str, Any]] = [{
        "day": label,
        "questions": sum(figures.questions.get(day, {}).values()),
        "by_surface": [figures.questions.get(day, {}).get(surface, 0) for surface in figures.surfaces],
        "up": figures.votes.get(day, {}).get("up", 0), "down": figures.votes.get(day, {}).get("down", 0),
        "refused": figures.refused.get(day, 0),
        "input_tokens": figures.tokens.get(day, (0, 0, 0))[0], "output_tokens": figures.tokens.get(day, (0, 0, 0))[1],
        "cost_usd": float(figures.tokens.get(day, (0, 0, 0))[2]),
    } for day, label in zip(figures.days, labels, strict=True)]
    charts = {
        "questions": stacked_bars("Questions per day", labels, {
            surface: [figures.questions.get(day, {}).get(surface, 0) for day in figures.days]
            for surface in figures.surfaces} or {"questions": [0] * len(labels)}),
        "votes": stacked_bars("Votes per day", labels, {"helpful": [r["up"] for r in rows],
                                                        "not helpful": [r["down"] for r in rows]}),
        "refused": stacked_bars("Refusals per day", labels, {"refused": [r["refused"] for r in rows]}),
        "tokens": stacked_bars("LLM tokens per day", labels, {"input": [r["input_tokens"] for r in rows],
                                                              "output": [r["output_tokens"] for r in rows]}),
        "cost": stacked_bars("LLM cost per day", labels, {"cost": [r["cost_usd"] for r in rows]}, unit=" USD"),
    }
    return TemplateResponse(request, "console/analytics.html", {
        **admin.site.each_context(request), "title": "Analytics", "days": days, "periods": PERIODS,
        "figures": figures, "rows": rows, "charts": charts,
        "latency": [(stage, p50, p95, n) for stage, (p50, p95, n) in figures.latency_ms.items()],
    })
