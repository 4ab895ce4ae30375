"""Added latency of ACL filtering for a user with 10,000 expanded principals, on both backends.

    python benchmarks/acl_latency.py [--documents 3000] [--queries 200] [--principals 10000]

Indexes synthetic documents whose ACLs name principals drawn from a large pool, then runs the
same hybrid searches (query vectors computed once, so only retrieval is timed) as a reader with
one principal and as a reader with --principals principals, and reports p50/p95 and the
difference. Also times expanding a user's principals through --principals nested group
memberships in the database (connectors.selectors.expanded_principals).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CITEWISE_VAR_DIR", tempfile.mkdtemp(prefix="citewise-bench-acl-"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--principals", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/acl-latency.json")
    args = parser.parse_args()

    import django
    from ask_latency import percentile

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from connectors.parsing import Section
    from identity.models import Account, ExternalIdentity, Group, GroupMembership
    from identity.selectors import expanded_principals
    from retrieval.embeddings import get_embedder
    from retrieval.services import DocumentToIndex, fusion_config, index_documents
    from search.analysis import analyzed_text
    from search.backends import create_backend
    from search.types import DocumentAcl, IndexedDocument, SearchFilters, SearchMode

    rng = random.Random(7)
    pool = [f"spo:bench:group:{i}" for i in range(args.principals * 2)]
    words = ["policy", "laptop", "travel", "budget", "onboarding", "deploy", "incident", "firmware", "robot", "charger",
             "warehouse", "leave"]
    documents = []
    for i in range(args.documents):
        text = " ".join(rng.choice(words) for _ in range(30)) + f". Document {i} covers {rng.choice(words)}."
        acl = DocumentAcl(principals=frozenset(rng.sample(pool, 3)), public=rng.random() < 0.1, status="ok")
        documents.append(DocumentToIndex(IndexedDocument(f"doc{i}", "1", f"Doc {i}", f"https://x/{i}", "text/plain",
                                                         None, acl), [Section((), text)]))
    embedder = get_embedder()
    queries = [" ".join(rng.sample(words, 3)) for _ in range(args.queries)]
    vectors = embedder.embed_documents(queries)
    small = frozenset(rng.sample(pool, 1))
    large = frozenset(rng.sample(pool, args.principals))
    fusion = fusion_config()
    results: dict = {"date": datetime.now(tz=UTC).date().isoformat(),
                     "machine": f"{platform.node()} {os.cpu_count()} cores", "documents": args.documents,
                     "queries": args.queries, "principals": args.principals, "backends": {}}
    for kind in ("embedded", "elasticsearch"):
        backend = create_backend(kind, f"bench-acl-{uuid.uuid4().hex[:8]}")
        try:
            index_documents(documents, backend=backend)
            timings: dict[str, list[float]] = {"1 principal": [], f"{args.principals} principals": []}
            for round_ in range(2):  # the first round warms caches and is not recorded
                for query, vector in zip(queries, vectors, strict=True):
                    for label, principals in (("1 principal", small), (f"{args.principals} principals", large)):
                        started = time.perf_counter()
                        backend.search(principals=principals, query=query, analyzed_query=analyzed_text(query),
                                       query_vector=vector, embedding_model=embedder.model_name,
                                       mode=SearchMode.HYBRID, filters=SearchFilters(), limit=10, fusion=fusion)
                        if round_:
                            timings[label].append((time.perf_counter() - started) * 1000)
            summary = {label: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(percentile(v, 0.95), 2)}
                       for label, v in timings.items()}
            summary["added_p95_ms"] = round(summary[f"{args.principals} principals"]["p95_ms"]
                                            - summary["1 principal"]["p95_ms"], 2)
            summary["added_p50_ms"] = round(summary[f"{args.principals} principals"]["p50_ms"]
                                            - summary["1 principal"]["p50_ms"], 2)
            results["backends"][kind] = summary
            print(kind, json.dumps(summary), flush=True)
        finally:
            backend.drop()

    # Expansion: a user directly in most groups, and through a 50-deep chain of nested groups in the rest.
    user = get_user_model().objects.create_user(f"bench-{uuid.uuid4().hex[:6]}")
    member = f"email:{user.username}@corp.example"
    ExternalIdentity.objects.create(user=user, principal=member)
    Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
    groups = Group.objects.bulk_create([Group(principal=f"bench:group:{i}:{uuid.uuid4().hex[:8]}")
                                        for i in range(args.principals)])
    direct, chain = groups[:-50], groups[-50:]
    memberships = [GroupMembership(group=g, member=member) for g in direct + chain[:1]]
    memberships += [GroupMembership(group=parent, member=child.principal) for child, parent in itertools.pairwise(chain)]
    GroupMembership.objects.bulk_create(memberships)
    expansion = []
    for _ in range(20):
        started = time.perf_counter()
        expanded = expanded_principals(user)
        expansion.append((time.perf_counter() - started) * 1000)
    results["expansion"] = {"principals": len(expanded), "p50_ms": round(statistics.median(expansion), 2),
                            "p95_ms": round(percentile(expansion, 0.95), 2)}
    print("expansion", json.dumps(results["expansion"]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
