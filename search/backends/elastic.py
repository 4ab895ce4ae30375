"""Elasticsearch backend: explicit mappings, a versioned index behind an alias, kNN + BM25 fused here.

Fusion runs client-side (search.fusion) because server-side RRF needs the rank-rrf module, which
the integ-test distribution lacks; the same code then ranks identically on every distribution.
The index refreshes only when we ask: each write call ends with one refresh, so a document's new
chunks and the removal of its old ones become visible together, as soon as the call returns.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import numpy as np
from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers

from search.backends.base import DocumentChunks, SearchBackend
from search.fusion import rank
from search.highlighting import POST_TAG, PRE_TAG, highlight
from search.types import (
    Chunk,
    DocumentAcl,
    FusionConfig,
    IndexedDocument,
    IndexInfo,
    IndexModelMismatch,
    LegHit,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchUnavailable,
)
from search.versions import VersionInfo, title_family, title_key

logger = logging.getLogger("citewise.search.elastic")
# 2: identifiers, document versions and unit_vectors. Versions differ only by fields added, which ensure_index adds
# to an older index in place.
SCHEMA_VERSION = 2
_SOURCE_FIELDS = [
    "chunk_id", "document_id", "source_id", "title", "url", "mime_type", "modified_at", "heading_path",
    "section_ordinal", "section_start", "section_end", "text", "effective_date",
]
_DOCUMENT_FIELDS = [
    "document_id", "source_id", "title", "url", "mime_type", "modified_at", "acl_principals", "acl_public",
    "acl_status", "effective_date", "supersedes",
]
# Fields schema 2 added. An index made before gets them (a mapping update adds fields in place); its chunks read
# as naming no identifiers and stating no versions until they are re-indexed, which the pipeline version bump does.
_SCHEMA_2_FIELDS: dict[str, Any] = {
    # Whole identifiers, lowercased in Python (search.analysis.identifiers): the integ-test distribution has no
    # word-delimiter or pattern filters, and a keyword field matches exactly on every distribution.
    "identifiers": {"type": "keyword"},
    "effective_date": {"type": "date", "format": "strict_date"},
    "title_key": {"type": "keyword"},
    "title_family": {"type": "keyword"},
    "supersedes": {"type": "keyword"},
}


def _raise_on_shard_failures(response: Any, what: str) -> None:
    """A shard that failed (a node gone, an index deleted mid-search) leaves a partial answer: an outage."""
    failed = (response.get("_shards") or {}).get("failed", 0)
    if failed:
        raise SearchUnavailable(f"Elasticsearch {what} failed on {failed} shard(s): "
                                f"{(response['_shards'].get('failures') or [''])[0]}")


# What a search leg asks for each hit: its chunk id from doc values, no stored field at all.
_IDS_ONLY: dict[str, Any] = {"_source": False, "stored_fields": ["_none_"], "docvalue_fields": ["chunk_id"],
                             "track_total_hits": False}

# A search whose concrete index a rebuild deleted under it is tried again on the new one, this many times in all.
SEARCH_ATTEMPTS = 3
# Elasticsearch's default index.merge.policy.max_merged_segment: the largest segment its merge policy makes.
MAX_MERGED_SEGMENT_BYTES = 5 * 1024**3
# Merging the 100k-chunk benchmark index took 1.5 to 4 minutes on 2 cores, with the machine idle or shared.
MERGE_TIMEOUT_S = 3600


class _IndexReplaced(Exception):
    """The concrete index a search read from the alias was deleted before the search reached it."""


def _index_gone(error: Any) -> bool:
    return isinstance(error, dict) and error.get("type") == "index_not_found_exception"


def _meta_of(embedding_model: str, dimensions: int) -> dict[str, Any]:
    return {"embedding_model": embedding_model, "dimensions": dimensions, "schema_version": SCHEMA_VERSION}


# Fields added after schema version 1, by the version that added them.
_ADDED_FIELDS: dict[str, Any] = {
    # The chunk's answer-unit vectors (search/unit_vectors.py), base64: kept in _source, never indexed.
    "unit_vectors": {"type": "binary"},
}


def _mappings(embedding_model: str, dimensions: int) -> dict[str, Any]:
    return {
        "_meta": _meta_of(embedding_model, dimensions),
        "dynamic": "strict",
        "properties": {
            **_ADDED_FIELDS,
            "chunk_id": {"type": "keyword"},
            "document_id": {"type": "keyword"},
            "source_id": {"type": "keyword"},
            "ordinal": {"type": "integer"},
            "title": {"type": "text", "analyzer": "standard", "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
            "url": {"type": "keyword", "index": False},
            "mime_type": {"type": "keyword"},
            "modified_at": {"type": "date"},
            "heading_path": {"type": "keyword"},
            "section_ordinal": {"type": "integer"},
            "section_start": {"type": "integer", "index": False},
            "section_end": {"type": "integer", "index": False},
            # Shown and highlighted; BM25 runs on `terms`, the shared analysis chain's output.
            "text": {"type": "text", "analyzer": "standard"},
            "terms": {"type": "text", "analyzer": "standard", "similarity": "BM25"},
            "content_hash": {"type": "keyword", "index": False},
            "vector": {
                "type": "dense_vector",
                "dims": dimensions,
                "index": True,
                "similarity": "cosine",
                "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
            },
            "acl_principals": {"type": "keyword"},
            "acl_public": {"type": "boolean"},
            "acl_status": {"type": "keyword"},
            **_SCHEMA_2_FIELDS,
        },
    }


def _version_number(physical: str) -> int:
    return int(physical.rsplit("-v", 1)[1])


def visibility_filter(principals: frozenset[str]) -> dict[str, Any]:
    """Readable iff ACL status is ok and the chunk is public or shares a principal with the asker."""
    readable: list[dict[str, Any]] = [{"term": {"acl_public": True}}]
    if principals:
        readable.append({"terms": {"acl_principals": sorted(principals)}})
    return {"bool": {"filter": [{"term": {"acl_status": "ok"}}], "should": readable, "minimum_should_match": 1}}


class ElasticsearchBackend:
    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        index_name: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        shards: int = 1,
        replicas: int = 0,
    ) -> None:
        self.url = url
        self.index_name = index_name
        self._api_key, self._timeout_s = api_key, timeout_s
        self.shards = shards
        self.replicas = replicas
        self.client = Elasticsearch(url, api_key=api_key, request_timeout=timeout_s, max_retries=2,
                                    retry_on_timeout=True)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (IndexModelMismatch, NotFoundError):
            raise
        except (ApiError, TransportError, helpers.BulkIndexError) as exc:
            raise SearchUnavailable(f"Elasticsearch at {self.url} failed to {action}: {exc}") from exc

    # -- index lifecycle ---------------------------------------------------------------------
    def _physical_indices(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.index_name).body)
        except NotFoundError:
            return []

    def _versions(self) -> list[str]:
        """Every `<index>-v<N>` that exists, behind the alias or not, by concrete name.

        Reading through a wildcard is fine; deleting through one is not (production clusters refuse it with
        action.destructive_requires_name), so callers delete what this lists, one name at a time.
        """
        existing = self.client.indices.get(index=f"{self.index_name}-v*", expand_wildcards="all").body
        pattern = re.compile(re.escape(self.index_name) + r"-v\d+")
        return sorted((name for name in existing if pattern.fullmatch(name)), key=_version_number)

    def _concrete(self) -> list[str]:
        """The concrete indices `index_name` names: the alias's, or the index itself (a staging version)."""
        try:
            return sorted(self.client.indices.get(index=self.index_name, expand_wildcards="all").body)
        except NotFoundError:
            return []

    def _delete_index(self, name: str) -> None:
        try:
            self.client.indices.delete(index=name)
        except NotFoundError:
            pass  # already gone: what a delete wants

    def _meta(self) -> dict[str, Any] | None:
        live = self._live()
        return live[1] if live is not None else None

    def _live(self) -> tuple[str, dict[str, Any]] | None:
        """The concrete index (or indices, comma-separated) behind the alias now, and its _meta; None if none.

        A search reads this one concrete index in every leg: through the alias, its legs would each resolve it
        anew, and a rebuild promoted in between would answer one leg from the old edition and one from the new.
        """
        try:
            mapping = self.client.indices.get_mapping(index=self.index_name).body
        except NotFoundError:
            return None
        return ",".join(sorted(mapping)), next(iter(mapping.values()))["mappings"].get("_meta", {})

    def ensure_index(self, embedding_model: str, dimensions: int) -> None:
        with self._errors("create the index"):
            meta = self._meta()
            if meta is None:
                self.create_version(embedding_model, dimensions, make_current=True)
            checked = self._check_model(embedding_model)
            if meta is not None:  # an index just created has this version's mapping already
                self._upgrade_mapping(checked)

    def _upgrade_mapping(self, meta: dict[str, Any]) -> None:
        """Add the fields of newer schema versions to an index made by an older one (new fields only, so no
        re-index); its chunks simply lack them until they are written again."""
        if int(meta.get("schema_version") or 1) >= SCHEMA_VERSION:
            return
        added = {**_ADDED_FIELDS, **_SCHEMA_2_FIELDS}
        # put_mapping replaces _meta whole: the model and dimensions go back in with the new version.
        self.client.indices.put_mapping(index=self.index_name, properties=added,
                                        meta=_meta_of(meta["embedding_model"], int(meta["dimensions"])))
        logger.info("added %s to the mapping of index %s", ", ".join(added), self.index_name)

    def create_version(self, embedding_model: str, dimensions: int, *, make_current: bool) -> str:
        """A new physical index `<alias>-v<N>`; re-indexing fills one and then moves the alias to it."""
        versions = [_version_number(name) for name in self._versions()]
        physical = f"{self.index_name}-v{max(versions, default=0) + 1}"
        body: dict[str, Any] = {
            "settings": {
                "number_of_shards": self.shards,
                "number_of_replicas": self.replicas,
                "refresh_interval": "-1",
            },
            "mappings": _mappings(embedding_model, dimensions),
        }
        if make_current:
            body["aliases"] = {self.index_name: {"is_write_index": True}}
        self.client.indices.create(index=physical, **body)
        self.client.cluster.health(index=physical, wait_for_status="yellow", timeout="30s")
        logger.info("created index %s for model %s", physical, embedding_model)
        return physical

    def staging(self, embedding_model: str, dimensions: int) -> ElasticsearchBackend:
        with self._errors("create a staging index"):
            physical = self.create_version(embedding_model, dimensions, make_current=False)
        return ElasticsearchBackend(self.url, physical, api_key=self._api_key, timeout_s=self._timeout_s,
                                    shards=self.shards, replicas=self.replicas)

    def promote(self, staged: SearchBackend) -> None:
        staged = self._check_staged(staged)
        staged.merge_segments()
        with self._errors("switch the alias to the rebuilt index"):
            old = self._physical_indices()
            actions: list[dict[str, dict[str, str | bool]]] = [
                {"remove": {"index": name, "alias": self.index_name}} for name in old]
            actions.append({"add": {"index": staged.index_name, "alias": self.index_name, "is_write_index": True}})
            self.client.indices.update_aliases(actions=actions)
        # The swap is done and searches use the new index; an old version that cannot be deleted now is
        # collected by the next rebuild (remove_stale_versions), so it does not fail this one.
        for name in old:
            try:
                self._delete_index(name)
            except (ApiError, TransportError) as exc:
                logger.warning("could not delete the replaced index %s (collected by the next rebuild): %s",
                               name, exc)

    def merge_segments(self) -> int:
        """Merge this (rebuilt, not yet serving) index's segments into as few as the merge policy still manages:
        one per MAX_MERGED_SEGMENT_BYTES of index. Returns how many it asked for; 0 if the merge failed (logged:
        it only makes searches faster, so the rebuild goes on without it).

        A rebuild writes in batches, each refreshed, so it leaves tens of segments, and every search walks each
        segment's HNSW graph and repeats its BM25 and filter work per segment: merged, the 100k-chunk benchmark's
        hybrid p95 went from 56.6 / 88.3 ms to 29.2 / 25.1 ms (docs/benchmarks.md, "Retrieval at scale"). The index
        is written to after it serves (syncs), so no segment is made larger than the merge policy's own maximum:
        Elasticsearch leaves such a segment alone until most of it is deleted documents.
        """
        try:
            self.client.indices.refresh(index=self.index_name)
            stats = self.client.indices.stats(index=self.index_name, metric="store")
            size = int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
            segments = max(1, math.ceil(size / MAX_MERGED_SEGMENT_BYTES))
            self.client.options(request_timeout=MERGE_TIMEOUT_S).indices.forcemerge(
                index=self.index_name, max_num_segments=segments)
        except (ApiError, TransportError) as exc:
            logger.warning("could not merge the segments of %s (searches are slower, nothing else): %s",
                           self.index_name, exc)
            return 0
        logger.info("merged %s into %d segment(s) (%d MB)", self.index_name, segments, size // 1_000_000)
        return segments

    def discard(self, staged: SearchBackend) -> None:
        staged = self._check_staged(staged)
        with self._errors("delete an unused staging index"):
            # Never the live index, even if a promote that seemed to fail did move the alias.
            if staged.index_name in self._physical_indices():
                return
            self._delete_index(staged.index_name)

    def _check_staged(self, staged: SearchBackend) -> ElasticsearchBackend:
        if not (isinstance(staged, ElasticsearchBackend) and staged.url == self.url
                and staged.index_name.startswith(f"{self.index_name}-")):
            raise ValueError(f"{staged!r} is not a staging index of {self.index_name!r}")
        return staged

    def remove_stale_versions(self) -> list[str]:
        with self._errors("delete stale index versions"):
            live = set(self._physical_indices())
            stale = [name for name in self._versions() if name not in live]
            for name in stale:
                self._delete_index(name)
        if stale:
            logger.info("deleted index versions not behind the alias %s: %s", self.index_name, ", ".join(stale))
        return stale

    def _check_model(self, embedding_model: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The index's _meta (read now unless given), once it is known to hold this model's vectors."""
        meta = self._meta() if meta is None else meta
        if meta is None:
            raise IndexModelMismatch(f"index {self.index_name!r} does not exist yet; ingest documents first")
        if meta.get("embedding_model") != embedding_model:
            raise IndexModelMismatch(
                f"index {self.index_name!r} holds vectors from {meta.get('embedding_model')!r}, not "
                f"{embedding_model!r}; re-index with `manage.py reindex` instead of mixing models"
            )
        return meta

    def index_info(self) -> IndexInfo | None:
        with self._errors("read index information"):
            meta = self._meta()
            if meta is None:
                return None
            count = self.client.count(index=self.index_name)["count"]
            return IndexInfo(meta["embedding_model"], int(meta["dimensions"]), count,
                             ",".join(self._physical_indices()))

    def drop(self) -> None:
        with self._errors("drop the index"):
            for name in sorted(set(self._concrete()) | set(self._versions())):
                self._delete_index(name)

    # -- writes --------------------------------------------------------------------------------
    def _chunk_ids(self, document_ids: Sequence[str]) -> Iterator[tuple[str, str]]:
        for hit in helpers.scan(
            self.client, index=self.index_name, size=1000,
            query={"query": {"terms": {"document_id": list(document_ids)}}, "_source": False,
                   "docvalue_fields": ["document_id"]},
        ):
            yield hit["_id"], hit["fields"]["document_id"][0]

    def replace_documents(self, batch: Sequence[DocumentChunks], *, embedding_model: str) -> None:
        with self._errors("index documents"):
            # The mapping is strict: an index from an older schema would refuse unit_vectors.
            self._upgrade_mapping(self._check_model(embedding_model))
            new_ids = {c.chunk_id for item in batch for c in item.chunks}
            stale = [cid for cid, _ in self._chunk_ids([i.document.document_id for i in batch]) if cid not in new_ids]
            actions: list[dict[str, Any]] = [
                {"_op_type": "delete", "_index": self.index_name, "_id": chunk_id} for chunk_id in stale
            ]
            for item in batch:
                document = item.document
                identifiers = item.identifiers or [()] * len(item.chunks)
                units = item.unit_vectors or [b""] * len(item.chunks)
                for chunk, vector, terms, named, unit_vectors in zip(item.chunks, item.vectors, item.analyzed_texts,
                                                                     identifiers, units, strict=True):
                    source: dict[str, Any] = {
                        "chunk_id": chunk.chunk_id, "document_id": document.document_id,
                        "source_id": document.source_id, "ordinal": chunk.ordinal, "title": document.title,
                        "url": document.url, "mime_type": document.mime_type,
                        "modified_at": document.modified_at.isoformat() if document.modified_at else None,
                        "heading_path": list(chunk.heading_path), "section_ordinal": chunk.section_ordinal,
                        "section_start": chunk.section_start, "section_end": chunk.section_end,
                        "text": chunk.text, "terms": terms, "content_hash": chunk.content_hash,
                        "vector": np.asarray(vector, dtype=np.float32).tolist(),
                        "acl_principals": sorted(document.acl.principals),
                        "acl_public": document.acl.public, "acl_status": document.acl.status,
                        "identifiers": list(named),
                        "effective_date": document.effective_date.isoformat() if document.effective_date else None,
                        "title_key": title_key(document.title), "title_family": title_family(document.title),
                        "supersedes": list(document.supersedes),
                    }
                    if unit_vectors:
                        source["unit_vectors"] = base64.b64encode(unit_vectors).decode("ascii")
                    actions.append({"_op_type": "index", "_index": self.index_name, "_id": chunk.chunk_id,
                                    "_source": source})
            helpers.bulk(self.client, actions, chunk_size=500, max_retries=3, raise_on_error=True,
                         ignore_status=(404,))
            self.client.indices.refresh(index=self.index_name)

    def update_acls(self, acls: Sequence[tuple[str, DocumentAcl]]) -> None:
        if not acls:
            return
        with self._errors("update document permissions"):
            if self._meta() is None:
                return
            by_document = dict(acls)
            # Partial-document updates: no scripts, so this works without the painless module.
            actions = [
                {"_op_type": "update", "_index": self.index_name, "_id": chunk_id, "doc": {
                    "acl_principals": sorted(by_document[document_id].principals),
                    "acl_public": by_document[document_id].public, "acl_status": by_document[document_id].status,
                }}
                for chunk_id, document_id in self._chunk_ids(list(by_document))
            ]
            helpers.bulk(self.client, actions, chunk_size=1000, max_retries=3, raise_on_error=True)
            self.client.indices.refresh(index=self.index_name)

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        if not document_ids:
            return
        with self._errors("delete documents"):
            if self._meta() is None:
                return
            actions = [{"_op_type": "delete", "_index": self.index_name, "_id": cid}
                       for cid, _ in self._chunk_ids(document_ids)]
            # Any refusal (a block, a closed shard) raises, so the caller keeps its rows and retries; a chunk
            # already gone (404) is what a delete wants.
            helpers.bulk(self.client, actions, chunk_size=1000, max_retries=3, raise_on_error=True,
                         ignore_status=(404,))
            self.client.indices.refresh(index=self.index_name)

    def _distinct(
        self, field: str, query: dict[str, Any] | None = None, *, page_size: int = 1000
    ) -> Iterator[list[str]]:
        """The distinct values of a keyword field, a composite-aggregation page at a time, in term order.

        Each page asks for the terms after the last one seen, so documents deleted in between (by the caller)
        neither repeat nor hide any; this runs on every distribution, the integ-test one included.
        """
        after: dict[str, Any] | None = None
        while True:
            body: dict[str, Any] = {"size": 0, "aggs": {"values": {"composite": {
                "size": page_size, "sources": [{"value": {"terms": {"field": field}}}],
                **({"after": after} if after else {}),
            }}}}
            if query:
                body["query"] = query
            result = self.client.search(index=self.index_name, **body)["aggregations"]["values"]
            page = [bucket["key"]["value"] for bucket in result["buckets"]]
            if page:
                yield page
            after = result.get("after_key")
            if not page or after is None:
                return

    def document_ids(self, *, source_ids: Sequence[str] | None = None) -> set[str]:
        return {i for page in self.document_id_pages(source_ids=source_ids) for i in page}

    def document_id_pages(
        self, *, source_ids: Sequence[str] | None = None, page_size: int = 1000
    ) -> Iterator[list[str]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        with self._errors("list documents"):
            if self._meta() is None or (source_ids is not None and not source_ids):
                return
            query = {"terms": {"source_id": list(source_ids)}} if source_ids is not None else None
            yield from self._distinct("document_id", query, page_size=page_size)

    def source_ids(self) -> set[str]:
        with self._errors("list sources"):
            if self._meta() is None:
                return set()
            return {value for page in self._distinct("source_id") for value in page}

    # -- reads ---------------------------------------------------------------------------------
    @staticmethod
    def _filters(principals: frozenset[str], filters: SearchFilters) -> list[dict[str, Any]]:
        clauses: list[dict[str, Any]] = [visibility_filter(principals)]
        for field, values in (("source_id", filters.source_ids), ("mime_type", filters.mime_types),
                              ("document_id", filters.document_ids)):
            if values:
                clauses.append({"terms": {field: list(values)}})
        date_range: dict[str, str] = {}
        if filters.modified_after:
            date_range["gte"] = filters.modified_after.isoformat()
        if filters.modified_before:
            date_range["lt"] = filters.modified_before.isoformat()
        if date_range:
            clauses.append({"range": {"modified_at": date_range}})
        return clauses

    def search(
        self,
        *,
        principals: frozenset[str],
        query: str,
        analyzed_query: str,
        query_vector: np.ndarray | None,
        embedding_model: str,
        mode: SearchMode,
        filters: SearchFilters,
        limit: int,
        fusion: FusionConfig,
        identifiers: Sequence[str] = (),
        with_unit_vectors: bool = False,
    ) -> list[SearchHit]:
        with self._errors("search"):
            for attempt in range(1, SEARCH_ATTEMPTS + 1):
                try:
                    return self._search_live(principals, query, analyzed_query, query_vector, embedding_model, mode,
                                             filters, limit, fusion, identifiers, with_unit_vectors)
                except _IndexReplaced as exc:  # a rebuild deleted the index between reading its name and searching
                    if attempt == SEARCH_ATTEMPTS:
                        raise SearchUnavailable(f"Elasticsearch index {self.index_name!r} was replaced during "
                                                f"{SEARCH_ATTEMPTS} searches in a row: {exc}") from exc
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _search_live(self, principals: frozenset[str], query: str, analyzed_query: str,
                     query_vector: np.ndarray | None, embedding_model: str, mode: SearchMode,
                     filters: SearchFilters, limit: int, fusion: FusionConfig, identifiers: Sequence[str],
                     with_unit_vectors: bool) -> list[SearchHit]:
        live = self._live()
        if live is None:
            return []
        index, meta = live
        if mode != SearchMode.BM25:
            self._check_model(embedding_model, meta)
            if query_vector is None:
                raise ValueError("dense and hybrid search need a query vector")
        depth = max(limit, fusion.candidates_per_leg)
        clauses = self._filters(principals, filters)
        searches: list[dict[str, Any]] = []
        legs: list[str] = []
        results: dict[str, list[LegHit]] = {"bm25": [], "dense": [], "exact": []}
        # The legs return ids and scores only, read from chunk_id's doc values: reading and highlighting every
        # candidate's source (100 per leg), or even its stored _id, which sits in the same compressed blocks as the
        # source with its vector, cost more than the searches themselves at 100k chunks. The final hits are read once
        # fused (_hydrate).
        if mode != SearchMode.DENSE and analyzed_query:
            legs.append("bm25")
            searches += [{"index": index}, {
                "size": depth, **_IDS_ONLY,
                "query": {"bool": {"must": {"match": {"terms": analyzed_query}}, "filter": clauses}},
                "sort": ["_score", {"chunk_id": "asc"}],
            }]
        if mode != SearchMode.BM25:
            legs.append("dense")
            searches += [{"index": index}, {
                "size": depth, **_IDS_ONLY,
                "knn": {"field": "vector", "query_vector": np.asarray(query_vector, dtype=np.float32).tolist(),
                        "k": depth, "num_candidates": max(depth, fusion.knn_num_candidates),
                        "filter": clauses},
            }]
        if mode == SearchMode.HYBRID and identifiers:
            legs.append("exact")
            # Each identifier named scores 1: a chunk's score is how many of the query's it names.
            named = [{"constant_score": {"filter": {"term": {"identifiers": identifier}}, "boost": 1.0}}
                     for identifier in sorted(set(identifiers))]
            searches += [{"index": index}, {
                "size": depth, **_IDS_ONLY,
                "query": {"bool": {"should": named, "minimum_should_match": 1, "filter": clauses}},
                "sort": ["_score", {"chunk_id": "asc"}],
            }]
        responses = self.client.msearch(searches=searches)["responses"] if searches else []
        for leg, response in zip(legs, responses, strict=True):
            if "error" in response:
                if _index_gone(response["error"]):
                    raise _IndexReplaced(f"{leg} search: {response['error']}")
                raise SearchUnavailable(f"Elasticsearch {leg} search failed: {response['error']}")
            _raise_on_shard_failures(response, f"{leg} search")
            results[leg] = [LegHit(hit["fields"]["chunk_id"][0], float(hit["_score"]))
                            for hit in response["hits"]["hits"]]
        fused = rank(mode, results["bm25"], results["dense"], fusion, results["exact"])[:limit]
        found_by_bm25 = {hit.chunk_id for hit in results["bm25"]}
        sources = self._hydrate(index, [f.chunk_id for f in fused], clauses, query, found_by_bm25, with_unit_vectors)
        return [self._hit(sources[f.chunk_id], f, query, sources[f.chunk_id].pop("_unit_vectors", b""))
                for f in fused if f.chunk_id in sources]

    def _hydrate(self, index: str, chunk_ids: list[str], clauses: list[dict[str, Any]], query: str,
                 highlighted: set[str], with_unit_vectors: bool) -> dict[str, dict[str, Any]]:
        """The final hits' sources, read again under the asker's filter (a chunk deleted or made unreadable since
        the legs ran is left out), with Elasticsearch's highlight for those the BM25 leg found, as before the
        legs returned ids alone. Unit vectors only when asked: answering wants them, a plain search does not."""
        if not chunk_ids:
            return {}
        fields = [*_SOURCE_FIELDS, "unit_vectors"] if with_unit_vectors else _SOURCE_FIELDS
        highlight = {"fields": {"text": {"fragment_size": 240, "number_of_fragments": 1}},
                     "highlight_query": {"match": {"text": query}},
                     "pre_tags": [PRE_TAG], "post_tags": [POST_TAG], "encoder": "html"}
        try:
            response = self.client.search(
                index=index, size=len(chunk_ids), source={"includes": fields}, track_total_hits=False,
                query={"bool": {"filter": [{"ids": {"values": chunk_ids}}, *clauses]}},
                highlight=highlight if highlighted & set(chunk_ids) else None)
        except NotFoundError as exc:
            raise _IndexReplaced(f"reading the hits: {exc}") from exc
        _raise_on_shard_failures(response, "hit lookup")
        sources: dict[str, dict[str, Any]] = {}
        for hit in response["hits"]["hits"]:
            source = hit["_source"]
            if hit["_id"] in highlighted and "highlight" in hit:
                source["_highlight"] = hit["highlight"]["text"][0]
            if with_unit_vectors and source.get("unit_vectors"):
                source["_unit_vectors"] = base64.b64decode(source.pop("unit_vectors"))
            sources[hit["_id"]] = source
        return sources

    @staticmethod
    def _hit(source: dict[str, Any], fused: Any, query: str, unit_vectors: bytes = b"") -> SearchHit:
        modified = source.get("modified_at")
        return SearchHit(
            chunk_id=source["chunk_id"], document_id=source["document_id"], source_id=source["source_id"],
            title=source["title"], url=source["url"], mime_type=source["mime_type"],
            modified_at=datetime.fromisoformat(modified) if modified else None,
            heading_path=tuple(source["heading_path"]), section_ordinal=source["section_ordinal"],
            text=source["text"], score=fused.score, bm25_rank=fused.bm25_rank, dense_rank=fused.dense_rank,
            highlight=source.get("_highlight") or highlight(source["text"], query), unit_vectors=unit_vectors,
            effective_date=date.fromisoformat(source["effective_date"]) if source.get("effective_date") else None,
        )

    def get_document(self, document_id: str, principals: frozenset[str]) -> IndexedDocument | None:
        with self._errors("read a document"):
            try:
                response = self.client.search(
                    index=self.index_name, size=1, track_total_hits=False, source={"includes": _DOCUMENT_FIELDS},
                    query={"bool": {"filter": [{"term": {"document_id": document_id}},
                                               visibility_filter(principals)]}},
                    sort=[{"ordinal": "asc"}],
                )
            except NotFoundError:  # no index yet, or it was dropped: nothing is readable
                return None
            _raise_on_shard_failures(response, "document lookup")
            hits = response["hits"]["hits"]
            if not hits:
                return None
            source = hits[0]["_source"]
            modified = source.get("modified_at")
            return IndexedDocument(
                document_id=source["document_id"], source_id=source["source_id"], title=source["title"],
                url=source["url"], mime_type=source["mime_type"],
                modified_at=datetime.fromisoformat(modified) if modified else None,
                acl=DocumentAcl(principals=frozenset(source.get("acl_principals") or ()),
                                public=bool(source["acl_public"]), status=source["acl_status"]),
                effective_date=date.fromisoformat(source["effective_date"]) if source.get("effective_date") else None,
                supersedes=tuple(source.get("supersedes") or ()),
            )

    def version_candidates(
        self, *, title_keys: Sequence[str], families: Sequence[str], principals: frozenset[str], limit: int = 100,
    ) -> list[VersionInfo]:
        if not title_keys and not families:
            return []
        with self._errors("read document versions"):
            try:
                response = self.client.search(
                    index=self.index_name, size=limit, track_total_hits=False,
                    source={"includes": ["document_id", "title", "effective_date", "supersedes"]},
                    query={"bool": {"filter": [visibility_filter(principals)], "minimum_should_match": 1, "should": [
                        {"terms": {"supersedes": sorted(set(title_keys))}},
                        {"bool": {"filter": [{"terms": {"title_family": sorted(set(families))}},
                                             {"exists": {"field": "effective_date"}}]}},
                    ]}},
                    collapse={"field": "document_id"}, sort=[{"document_id": "asc"}],
                )
            except NotFoundError:
                return []
            _raise_on_shard_failures(response, "version lookup")
            return [VersionInfo(
                source["document_id"], source["title"],
                date.fromisoformat(source["effective_date"]) if source.get("effective_date") else None,
                tuple(source.get("supersedes") or ()),
            ) for source in (hit["_source"] for hit in response["hits"]["hits"])]

    def chunk_texts(self, *, page_size: int = 500) -> Iterator[list[tuple[str, DocumentAcl]]]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        with self._errors("read chunk texts"):
            if self._meta() is None:
                return
            page: list[tuple[str, DocumentAcl]] = []
            for hit in helpers.scan(
                self.client, index=self.index_name, size=page_size,
                query={"query": {"match_all": {}},
                       "_source": ["text", "acl_principals", "acl_public", "acl_status"]},
            ):
                source = hit["_source"]
                page.append((source["text"], DocumentAcl(principals=frozenset(source.get("acl_principals") or ()),
                                                         public=bool(source["acl_public"]),
                                                         status=source["acl_status"])))
                if len(page) == page_size:
                    yield page
                    page = []
            if page:
                yield page

    def document_chunks(self, document_id: str, *, principals: frozenset[str], limit: int = 5000) -> list[Chunk]:
        with self._errors("read a document's chunks"):
            try:
                # Within the default max_result_window (10,000): no scroll needed for one document.
                response = self.client.search(
                    index=self.index_name, size=min(limit, 10_000), track_total_hits=False,
                    source={"includes": ["chunk_id", "ordinal", "text", "heading_path", "section_ordinal",
                                         "section_start", "section_end", "content_hash"]},
                    query={"bool": {"filter": [{"term": {"document_id": document_id}},
                                               visibility_filter(principals)]}},
                    sort=[{"ordinal": "asc"}],
                )
            except NotFoundError:  # no index yet, or it was dropped: nothing is readable
                return []
            _raise_on_shard_failures(response, "document chunks")
            return [Chunk(chunk_id=source["chunk_id"], document_id=document_id, ordinal=source["ordinal"],
                          text=source["text"], heading_path=tuple(source["heading_path"]),
                          section_ordinal=source["section_ordinal"], section_start=source["section_start"],
                          section_end=source["section_end"], content_hash=source.get("content_hash", ""))
                    for source in (hit["_source"] for hit in response["hits"]["hits"])]

    def section_chunks(
        self, document_id: str, section_ordinal: int, *, principals: frozenset[str]
    ) -> list[tuple[str, int, int]]:
        with self._errors("read a section"):
            if self._meta() is None:
                return []
            response = self.client.search(
                index=self.index_name, size=1000, source={"includes": ["text", "section_start", "section_end"]},
                query={"bool": {"filter": [
                    {"term": {"document_id": document_id}}, {"term": {"section_ordinal": section_ordinal}},
                    visibility_filter(principals),
                ]}},
                sort=[{"ordinal": "asc"}],
            )
            return [(h["_source"]["text"], h["_source"]["section_start"], h["_source"]["section_end"])
                    for h in response["hits"]["hits"]]


