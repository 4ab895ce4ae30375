"""What retrieval announces. Whoever keeps something derived from an index (the answer cache) listens, so the
writers (the connectors' syncs) need not know who that is."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after documents were written to an index, deleted from it or had their ACLs changed there, and after a rebuilt
# index was swapped in. Keyword arguments: `backend` (the SearchBackend written), `document_ids` (a frozenset of the
# documents affected, or None when the whole index changed) and `source_ids` (a frozenset of their sources' ids;
# empty when the writer did not say).
index_changed = Signal()
