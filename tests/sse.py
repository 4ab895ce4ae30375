"""Reading the web chat's Server-Sent Events from a Django test response."""

from __future__ import annotations

import json


def sse_events(response) -> list[tuple[str, dict]]:
    """(event name, JSON data) of every event in a streamed response; comments (": …") are skipped."""
    events = []
    for block in b"".join(response.streaming_content).decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if lines:
            fields = dict(line.split(": ", 1) for line in lines)
            events.append((fields["event"], json.loads(fields["data"])))
    return events
