"""Freshness alerts: when a source turns stale or failing (connectors.selectors.freshness), say so once.

Beat runs `connectors.check_freshness` every CITEWISE_FRESHNESS_CHECK_INTERVAL_S. Each check sets the
`citewise_source_health{source,state}` gauge (1 for the source's badge, 0 for the others) in the process that ran it;
a source whose badge turned stale or failing since the last alert is logged as a structured warning and mailed to
CITEWISE_ALERT_EMAILS. Source.health_alerted remembers what was alerted, so a source that stays failing is not
alerted again at every check, and one that recovers and fails again is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.mail import send_mail
from prometheus_client import Gauge

from connectors.models import Source
from connectors.selectors import Health, SourceFreshness, freshness
from core.config import CitewiseSettings, current

logger = logging.getLogger("citewise.connectors")

SOURCE_HEALTH = Gauge("citewise_source_health", "1 for each source's freshness badge, 0 for its other states",
                      ["source", "state"])
STATES = (Health.HEALTHY, Health.STALE, Health.FAILING, Health.PAUSED)


@dataclass(frozen=True)
class Alert:
    source_id: int
    source: str
    state: str
    reason: str


def _describe(entry: SourceFreshness) -> str:
    lag = f"{entry.lag_s / 3600:.1f} h" if entry.lag_s is not None else "never"
    return (f"{entry.source.name} ({entry.source.kind}, {entry.source.location}) is {entry.health}: {entry.reason}\n"
            f"Last successful sync: {lag} ago (target {entry.target_s / 3600:.1f} h). Indexed: {entry.indexed}. "
            f"Failing documents: {entry.failing_documents}. Failed in the last run: {entry.last_run_failed}.")


def check_freshness(now: datetime | None = None, config: CitewiseSettings | None = None) -> list[Alert]:
    """Set the health gauge for every source, and alert (log, mail) each one whose badge turned stale or failing
    since its last alert; the alerts sent."""
    config = config or current()
    alerts: list[Alert] = []
    for entry in freshness(now=now, config=config):
        source = entry.source
        for state in STATES:
            SOURCE_HEALTH.labels(source=source.name, state=state).set(1 if state == entry.health else 0)
        alerted = entry.health if entry.health in Health.UNHEALTHY else ""
        if alerted == source.health_alerted:
            continue
        Source.objects.filter(pk=source.pk).update(health_alerted=alerted)
        if not alerted:
            logger.info("source %s is %s again", source.name, entry.health,
                        extra={"source_id": source.pk, "state": entry.health})
            continue
        alert = Alert(source_id=source.pk, source=source.name, state=entry.health, reason=entry.reason)
        alerts.append(alert)
        logger.warning("source %s turned %s: %s", source.name, entry.health, entry.reason,
                       extra={"event_kind": "source_health", "source_id": source.pk, "source": source.name,
                              "state": entry.health, "lag_s": entry.lag_s, "target_s": entry.target_s,
                              "failing_documents": entry.failing_documents})
        recipients = [address.strip() for address in config.alert_emails.split(",") if address.strip()]
        if recipients:
            send_mail(f"[Citewise] {source.name} is {entry.health}", _describe(entry), None, recipients,
                      fail_silently=False)
    return alerts
