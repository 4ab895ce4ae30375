"""A generated organisation for ACL tests: people, nested groups, folder sources with ACL manifests.

The test owns the policy. Each document's intended ACL and each group's members live in plain
Python structures here; the sources on disk (files plus `.citewise-acl.json`) are written *from*
them, and the expected visibility is computed from them with this module's own group expansion,
never with the product's selectors.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

SHARED_TOKEN = "zorblax"
CORP = "corp.example"
PARTNER = "partner.example"
EVERYONE_INTERNAL = "org:everyone-except-external"
GHOST_GROUP = "group:does-not-exist"  # named in memberships and ACLs; no Group row (until churn)
NOUNS = ["badge", "ledger", "vault", "budget", "pager", "roster", "locker", "parking", "printer", "wifi", "garage",
         "archive", "freezer", "kiosk", "turnstile", "mailbox"]
_SYLLABLES = ["ka", "ve", "ro", "mi", "tu", "la", "xo", "pe", "zi", "qua", "bo", "nu", "fe", "gri", "sto", "vla",
              "dre", "mo", "sa", "ki", "ju", "ny", "po", "ta"]


@dataclass(frozen=True)
class Acl:
    """A document's intended permissions. `bad` is the non-list `principals` an errorful rule writes."""

    status: str  # ok | unknown | error
    public: bool = False
    principals: frozenset[str] = frozenset()
    bad: object = None
    kind: str = ""  # what the generator meant, for reporting and sampling

    def rule(self, paths: list[str]) -> dict:
        assert self.status != "unknown", "unknown permissions are the absence of a matching rule"
        if self.status == "error":
            return {"paths": paths, "principals": self.bad}
        rule: dict = {"paths": paths}
        if self.principals:
            rule["principals"] = sorted(self.principals)
        if self.public:
            rule["public"] = True
        return rule


UNKNOWN = Acl("unknown", kind="unknown")


@dataclass
class Person:
    username: str
    identities: list[tuple[str, bool]]  # (principal, is_external)
    status: str = "employee"  # employee | guest | unknown, as an admin recorded it

    def principal_forms(self) -> list[str]:
        """Ways an ACL or a group can name this person."""
        return [f"citewise:user:{self.username}", *(p for p, _ in self.identities)]


@dataclass
class DocSpec:
    uniq: str
    noun: str
    code: str

    @property
    def question(self) -> str:
        return f"What is the {self.uniq} {self.noun} code?"

    def text(self, path: str) -> str:
        if path.endswith(".md"):
            return f"# Memo {self.uniq}\n\n{SHARED_TOKEN} memo. The {self.uniq} {self.noun} code is {self.code}.\n"
        return f"{SHARED_TOKEN} memo. The {self.uniq} {self.noun} code is {self.code}.\n"


@dataclass
class SourceSpec:
    name: str
    manifest: str = "ok"  # ok | invalid | missing
    default: Acl | None = None
    # (folder, acl) in manifest order: a parent folder before its subfolders.
    folders: list[tuple[str, Acl]] = field(default_factory=list)
    # (folders, suffix, acl): files ending in `suffix` in any of `folders`, written after the folder rules.
    suffix_rules: list[tuple[tuple[str, ...], str, Acl]] = field(default_factory=list)
    overrides: dict[str, Acl] = field(default_factory=dict)  # exact paths, written last
    groups: dict[str, list[str]] = field(default_factory=dict)  # groups this source defines
    files: dict[str, DocSpec] = field(default_factory=dict)
    ruleless_folders: list[str] = field(default_factory=list)

    # -- the policy, as the test means it --------------------------------------------------------
    def intended_acl(self, path: str) -> Acl:
        if self.manifest == "missing":
            return UNKNOWN
        if self.manifest == "invalid":
            return Acl("error", kind="error")
        decided = self.default
        # Deeper folders are more specific; among equally deep ones only one can contain the path.
        containing = [(folder.count("/"), acl) for folder, acl in self.folders if path.startswith(folder + "/")]
        if containing:
            decided = max(containing, key=lambda pair: pair[0])[1]
        for folders, suffix, acl in self.suffix_rules:
            if path.endswith(suffix) and any(path.startswith(f + "/") for f in folders):
                decided = acl
        decided = self.overrides.get(path, decided)
        return decided or UNKNOWN

    # -- on disk ---------------------------------------------------------------------------------
    def manifest_json(self) -> dict:
        rules = [acl.rule([f"{folder}/*"]) for folder, acl in self.folders]
        rules += [acl.rule([f"{folder}/*{suffix}" for folder in folders]) for folders, suffix, acl in self.suffix_rules]
        rules += [acl.rule([path]) for path, acl in self.overrides.items()]
        manifest: dict = {"groups": self.groups, "rules": rules}
        if self.default is not None:
            manifest["default"] = self.default.rule([])
            del manifest["default"]["paths"]
        return manifest

    def write(self, root: Path) -> None:
        folder = root / self.name
        folder.mkdir(parents=True, exist_ok=True)
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        for path in present - set(self.files) - {".citewise-acl.json"}:
            (folder / path).unlink()
        for path, doc in self.files.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            text = doc.text(path)
            if not target.exists() or target.read_text() != text:
                target.write_text(text)
        manifest_path = folder / ".citewise-acl.json"
        if self.manifest == "missing":
            manifest_path.unlink(missing_ok=True)
        elif self.manifest == "invalid":
            manifest_path.write_text('{"groups": {}, "rules": [{"paths": ["*"], "public": true}')  # truncated
        else:
            manifest_path.write_text(json.dumps(self.manifest_json(), indent=1))


@dataclass
class Organisation:
    people: dict[str, Person]
    sources: dict[str, SourceSpec]
    rng: random.Random
    used_tokens: set[str] = field(default_factory=set)
    used_codes: set[str] = field(default_factory=set)

    # -- the test's own model of who reads what --------------------------------------------------
    def groups(self) -> dict[str, list[str]]:
        merged: dict[str, list[str]] = {}
        for source in self.sources.values():
            if source.manifest == "ok":  # an unreadable manifest lists no groups
                merged.update(source.groups)
        return merged

    def reads_as(self, username: str, max_depth: int | None = None) -> frozenset[str]:
        """Own principals, then groups level by level (fixed-point rounds, not the product's graph walk).

        Round n adds the groups n memberships away; `max_depth` stops early, to tell what deep nesting grants.
        """
        person = self.people[username]
        held = {f"citewise:user:{username}"} | {p for p, _ in person.identities}
        if person.status == "employee":  # only employees read as their domain or as everyone internal
            held |= {f"domain:{p.rsplit('@', 1)[1].lower()}" for p, external in person.identities
                     if p.startswith("email:") and "@" in p and not external}
            if not any(external for _, external in person.identities):
                held.add(EVERYONE_INTERNAL)
        groups = self.groups()
        depth = 0
        while max_depth is None or depth < max_depth:
            reached = {group for group, members in groups.items() if group not in held and held.intersection(members)}
            if not reached:
                break
            held |= reached
            depth += 1
        return frozenset(held)

    def documents(self) -> dict[tuple[str, str], tuple[DocSpec, Acl]]:
        return {(source.name, path): (doc, source.intended_acl(path))
                for source in self.sources.values() for path, doc in source.files.items()}

    @staticmethod
    def may_read(acl: Acl, principals: frozenset[str]) -> bool:
        return acl.status == "ok" and (acl.public or bool(acl.principals & principals))

    # -- generation ------------------------------------------------------------------------------
    def new_doc(self) -> DocSpec:
        while True:
            token = "".join(self.rng.choice(_SYLLABLES) for _ in range(4))
            # No token may contain another (or a fixed word), so "token in text" means exactly that document.
            if token in self.used_tokens or any(token in t or t in token for t in self.used_tokens):
                continue
            if any(token in w or w in token for w in (SHARED_TOKEN, "memo", "code", *NOUNS)):
                continue
            code = str(self.rng.randint(100000, 999999))
            if code in self.used_codes:
                continue
            self.used_tokens.add(token)
            self.used_codes.add(code)
            return DocSpec(token, self.rng.choice(NOUNS), code)

    def random_acl(self, *, allow_error: bool = True) -> Acl:
        rng = self.rng
        internal = [p for p in self.people.values() if p.identities and not any(e for _, e in p.identities)]
        everyone = list(self.people.values())
        group_names = sorted({g for s in self.sources.values() for g in s.groups})

        def someone() -> str:
            return rng.choice(rng.choice(everyone).principal_forms())

        kinds = ["public"] * 14 + ["users"] * 18 + ["groups"] * 24 + ["mixed"] * 10 + ["domain"] * 5 + \
            ["everyone-internal"] * 5 + ["nobody"] * 2 + ["dangling"] * 4 + ["public+groups"] * 3 + \
            (["error"] * 7 if allow_error else [])
        kind = rng.choice(kinds)
        if kind == "public":
            return Acl("ok", public=True, kind=kind)
        if kind == "public+groups":
            return Acl("ok", public=True, principals=frozenset(rng.sample(group_names, 2)), kind=kind)
        if kind == "users":
            return Acl("ok", principals=frozenset(someone() for _ in range(rng.randint(1, 3))), kind=kind)
        if kind == "groups":
            return Acl("ok", principals=frozenset(rng.sample(group_names, rng.randint(1, 2))), kind=kind)
        if kind == "mixed":
            return Acl("ok", principals=frozenset([someone(), rng.choice(group_names),
                                                   rng.choice(internal).principal_forms()[0]]), kind=kind)
        if kind == "domain":
            return Acl("ok", principals=frozenset([f"domain:{CORP}"]), kind=kind)
        if kind == "everyone-internal":
            return Acl("ok", principals=frozenset([EVERYONE_INTERNAL]), kind=kind)
        if kind == "nobody":
            return Acl("ok", kind=kind)
        if kind == "dangling":
            return Acl("ok", principals=frozenset([rng.choice([GHOST_GROUP, "group:ghost-parent",
                                                               f"email:nobody@{CORP}", f"domain:{PARTNER}"])]),
                       kind=kind)
        bad = rng.choice(["group:team-01", {"group:team-02": True}, 7, "everyone"])
        return Acl("error", bad=bad, kind="error")


def build_people(rng: random.Random, count: int = 60) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for i in range(count):
        name = f"user{i:02d}"
        status = "employee"
        if i in (55, 56, 57, 58):  # guests: an external identity only
            identities, status = [(f"email:{name}@{PARTNER}", True)], "guest"
        elif i == 59:  # a contractor: a corp address, but also a guest account elsewhere
            identities, status = [(f"email:{name}@{CORP}", False), (f"slack:TPARTNER:user:U{i:05d}", True)], "guest"
        elif i in (53, 54):  # signed up, no linked identity yet; an admin vouched for user54 only
            identities, status = [], "unknown" if i == 53 else "employee"
        else:
            identities = [(f"email:{name}@{CORP}", False)]
            if rng.random() < 0.35:
                identities.append((f"slack:TCORP:user:U{i:05d}", False))
            if i in (51, 52):  # a corp address linked, but nobody said whether they are staff
                status = "unknown"
        people[name] = Person(name, identities, status)
    return people


def build_organisation(seed: int = 20240611) -> Organisation:
    rng = random.Random(seed)
    people = build_people(rng)
    names = sorted(people)
    internal = [n for n in names if people[n].identities and not any(e for _, e in people[n].identities)]

    def form(name: str) -> str:
        return rng.choice(people[name].principal_forms())

    wiki_groups: dict[str, list[str]] = {}
    for t in range(12):
        members = [form(n) for n in rng.sample(internal, rng.randint(3, 6))]
        if t in (3, 8):
            members.append(form(rng.choice(["user55", "user56", "user59"])))  # a guest in a team
        wiki_groups[f"group:team-{t:02d}"] = members
    wiki_groups["group:team-07"].append(GHOST_GROUP)  # an unknown group principal as a member
    for d in range(4):
        wiki_groups[f"group:dept-{d}"] = [f"group:team-{t:02d}" for t in range(d * 3, d * 3 + 3)]
    wiki_groups["group:dept-2"].append(form(internal[-1]))
    wiki_groups["group:div-a"] = ["group:dept-0", "group:dept-1"]
    wiki_groups["group:div-b"] = ["group:dept-2", "group:dept-3"]
    wiki_groups["group:all-staff"] = ["group:div-a", "group:div-b"]
    # A cycle: ring-a ∋ ring-b ∋ ring-c ∋ ring-a, each with an entry point of its own.
    wiki_groups["group:ring-a"] = ["group:ring-b", form(internal[1])]
    wiki_groups["group:ring-b"] = ["group:ring-c", form(internal[2])]
    wiki_groups["group:ring-c"] = ["group:ring-a", "group:team-05"]
    wiki_groups["group:ghost-parent"] = [GHOST_GROUP]
    wiki_groups["group:internal-all"] = [EVERYONE_INTERNAL]
    wiki_groups["group:corp-domain"] = [f"domain:{CORP}"]
    wiki_groups["group:empty"] = []
    drive_groups = {
        "group:proj-x": ["group:team-02", form(internal[10])],
        "group:proj-y": ["group:proj-x", "group:ring-a", "group:dept-3"],
        "group:proj-z": ["group:proj-y", form("user56")],
    }
    sources = {
        "wiki": SourceSpec("wiki", groups=wiki_groups),
        "drive": SourceSpec("drive", groups=drive_groups),
        "tickets": SourceSpec("tickets"),
        "legacy": SourceSpec("legacy", manifest="invalid"),
        "scratch": SourceSpec("scratch", manifest="missing"),
    }
    org = Organisation(people, sources, rng)
    sources["drive"].default = Acl("ok", principals=frozenset([f"domain:{CORP}"]), kind="domain")

    sizes = {"wiki": 200, "drive": 180, "tickets": 120, "legacy": 12, "scratch": 8}
    for name, source in sources.items():
        if source.manifest == "ok":
            top = [f"f{i:02d}" for i in range(12)]
            for folder in top:
                source.folders.append((folder, org.random_acl()))
            for parent in rng.sample(top, 3):
                source.folders.append((f"{parent}/sub", org.random_acl()))
            source.suffix_rules.append((tuple(rng.sample(top, 2)), ".md", org.random_acl()))
            source.ruleless_folders = ["loose"]  # no rule: unknown, or the source's default
            folders = [f for f, _ in source.folders] + source.ruleless_folders
        else:
            folders = ["a", "b"]
        for _ in range(sizes[name]):
            doc = org.new_doc()
            extension = ".md" if rng.random() < 0.3 else ".txt"
            path = f"{rng.choice(folders)}/memo-{doc.uniq}{extension}"
            source.files[path] = doc
        if source.manifest == "ok":
            for path in rng.sample(sorted(source.files), len(source.files) // 5):
                source.overrides[path] = org.random_acl()
    return org
