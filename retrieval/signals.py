"""What retrieval announces, and what it asks of the apps above it without importing them.

Whoever keeps something derived from an index (the answer cache) listens to index_changed, so the writers (the
connectors' syncs) need not know who that is; whoever records what was indexed (the connectors) answers
index_found_empty, so that retrieval can tell an empty index from a lost one.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent after documents were written to an index, deleted from it or had their ACLs changed there, and after a rebuilt
# index was swapped in. Keyword arguments: `backend` (the SearchBackend written), `document_ids` (a frozenset of the
# documents affected, or None when the whole index changed) and `source_ids` (a frozenset of their sources' ids;
# empty when the writer did not say).
index_changed = Signal()

# Sent when an index turns out missing or empty, to ask whether that is an outage: a receiver returns True when its
# records say chunks were written there. Keyword arguments: `backend_kind` and `index_name`. No receiver saying so
# means the index is just empty (nothing ingested yet).
index_found_empty = Signal()
