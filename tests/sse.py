"""Reading the web chat's Server-Sent Events from a Django test response."""

from __future__ import annotations

import json

# Sent while an answer is being made (answers/progress.py); the answer itself is in the others.
PROGRESS_EVENTS = ("progress", "draft")


def sse_events(response, *, progress: bool = False) -> list[tuple[str, dict]]:
    """(event name, JSON data) of every event in a streamed response, the progress and draft events only when
    `progress`; comments (": …") are skipped."""
    events = []
    for block in b"".join(response.streaming_content).decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if lines:
            fields = dict(line.split(": ", 1) for line in lines)
            if progress or fields["event"] not in PROGRESS_EVENTS:
                events.append((fields["event"], json.loads(fields["data"])))
    return events
