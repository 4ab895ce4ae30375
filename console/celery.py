"""The Celery application; eager in the embedded default, Redis-backed when CELERY_BROKER_URL is set."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_prerun

from core import logcontext

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")

app = Celery("citewise")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **kwargs) -> None:
    """A queued task carries the id of the request that queued it, for the worker's log lines."""
    request_id = logcontext.current_ids().get("request_id")
    if request_id and headers is not None:
        headers.setdefault("citewise_request_id", request_id)


@task_prerun.connect
def _task_log_context(task_id: str | None = None, task=None, **kwargs) -> None:
    request = task.request if task is not None else None
    if request is not None and not request.is_eager:  # an eager task runs inside its caller's context: kept
        offered = getattr(request, "citewise_request_id", None) or (request.headers or {}).get("citewise_request_id")
        logcontext.new_request(offered)
    logcontext.bind(task_id=task_id, task=getattr(task, "name", ""))
