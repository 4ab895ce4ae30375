"""What a question asks for, read from its wording: the kind of fact (an amount, a date, a person, steps, a list,
an identifier), whether it asks about the document itself (owner, version), and its parts when it asks two things.

The extractive composer uses it to prefer units that hold the wanted kind of fact and to choose how much to quote
(a whole list for "how do I…", one table row for "what is prod-eu?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from retrieval.spelling import english_word_counts
from search.analysis import analyze

AMOUNT, DATE, PERSON, STEPS, LIST = "amount", "date", "person", "steps", "list"

_ASKS = {
    AMOUNT: re.compile(
        r"\bhow (?:much|many|long|often|big|large|far|high|fast|soon)\b|\b(?:costs?|prices?|priced|fees?|rates?|"
        r"budget|caps?|capped|limits?|allowance|stipend|per diem|reimburs\w*|maximum|minimum|max|min|amount|salary|"
        r"percent(?:age)?|number of|range|capacity|timeout)\b", re.IGNORECASE),
    DATE: re.compile(
        r"\bwhen\b|\bdeadlines?\b|\bwhat (?:time|day|date|hours)\b|\b(?:which|what) (?:days?|dates?|months?)\b|"
        r"\bdue\b|\bhow (?:soon|far in advance)\b|\bby (?:what|which) (?:date|day|time)\b|\bwindow\b", re.IGNORECASE),
    PERSON: re.compile(
        r"\bwho(?:['’]?s)?\b|\bwhom\b|\bwhose\b|\b(?:contact|e-?mail|reach|responsible|in charge|approves?|approver)\b",
        re.IGNORECASE),
    STEPS: re.compile(
        r"^\W*(?:how (?:do|can|should|would|to) (?:i|we|you|one)?)|\bhow to\b|\bsteps?\b|\bprocedures?\b|"
        r"\bprocess\b|\binstructions?\b|\bcommands?\b|\bwalk me through\b", re.IGNORECASE),
    LIST: re.compile(
        r"^\W*(?:what|which) (?:are|were)\b|\blist\b|\boptions\b|\brequirements\b|\brules\b|\bkinds of\b|"
        r"\btypes of\b|\bexamples\b|\ball the\b", re.IGNORECASE),
}
_HOLDS = {
    AMOUNT: re.compile(
        r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
        r"sixty|hundred|thousand|half|double|twice|unlimited)\b", re.IGNORECASE),
    DATE: re.compile(
        r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
        r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
        r"weekends?|weekdays?|daily|weekly|monthly|quarterly|annually|yearly|noon|midnight|deadline|"
        r"(?:business|working|calendar) days?|\d+\s*(?:days?|weeks?|months?|years?|hours?|minutes?))\b|"
        r"\b\d{1,2}:\d{2}\b|\b\d{4}-\d{2}-\d{2}\b|\b(?:before|after|within|until|by) (?:the )?\w", re.IGNORECASE),
    PERSON: re.compile(
        r"[\w.+-]+@[\w-]+\.[\w.]+|(?<!\w)[#@][\w-]{2,}|\b(?:manager|director|vp|ciso|cto|ceo|cfo|coo|head of|"
        r"lead|team|department|officer|administrator|admin|hr|people|on-call|owner|approver|desk|support)\b",
        re.IGNORECASE),
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_NAME = re.compile(r"\b[A-Z][a-z]+ [A-Z][a-z]+\b")
# An identifier: inline code or a token mixing letters and digits ("SEV2", "rc-2025.06.12.1"); in a "what is X?"
# question also a token with inner punctuation ("prod-eu") or an acronym ("SECX").
_CODED = re.compile(r"`([^`]+)`|(?<![\w./:-])((?=[\w./:-]*\d)(?=[\w./:-]*[A-Za-z])\w[\w./:-]*\w)")
_COMPOUND = re.compile(r"(?<![\w./:-])\w+(?:[-_./:]\w+)+")
_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]{1,9}\b")
_WHAT_IS = re.compile(r"^\W*(?:what(?:'s| is| are| does)|define|meaning of)\b", re.IGNORECASE)
_ASKS_METADATA = re.compile(
    r"\b(?:own(?:s|ed|er|ers)?|version|effective|in effect|takes? effect|last (?:updated|reviewed|changed)|"
    r"updated|appl(?:y|ies)|audience|maintain(?:s|ed|er)?|approved by|author|wrote)\b", re.IGNORECASE)


# "How many PTO days …": the noun counted, so "20 days" answers it and "three business days' notice" less so.
_MEASURE = re.compile(
    r"\bhow (?:many|much)\s+((?:[\w-]+\s+){0,3}?)(?=(?:do|does|did|can|could|will|would|should|is|are|am|was|were|"
    r"have|has|i|we|you|they|per|a|an|the|each|every|in|on|for|of)\b|\?|$)", re.IGNORECASE)
_AMOUNT_TOKEN = re.compile(r"[$€£]?\d+(?:[.,]\d+)*%?|[^\W\d_]+(?:['’][^\W\d_]+)*")
_NUMBER_WORDS = frozenset((
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "hundred", "thousand"))


_MONEY_MEASURES = frozenset(analyze("money cash budget allowance stipend spend price fee pay salary dollars euros"))
# An amount of money: "$400", "€1,200", "72.5 cents".
MONEY = re.compile(
    r"[$€£¥₹₩₽₪₺₴₦₱]\s?\d|\b(?:usd|eur|gbp|jpy|cny|inr|chf|sek|nok|dkk|aud|cad|nzd|sgd|hkd|pln)\s?\d|"
    r"\b\d[\d,.]*\s?(?:usd|eur|gbp|jpy|cny|inr|chf|sek|nok|dkk|aud|cad|nzd|sgd|hkd|pln|dollars?|euros?|cents?|"
    r"pence|pounds?|kr|kroner|kronor|krona|yen|yuan|rupees?|francs?|z[łl]oty)\b", re.IGNORECASE)


# A capitalised pair is someone's name when one of its words is rare in English and not shaped like a common noun
# ("Tessa Nguyen", "Wen Li"), not a product, place or title made of ordinary words ("Access Hub", "Fields Park",
# "Reimbursement Policy").
RARE_NAME_WORD_COUNT = 5_000_000
_NOUN_ENDINGS = ("ment", "tion", "sion", "ness", "ity", "ance", "ence", "ing", "ship", "ism", "ure", "age", "ery")


def _names_someone(text: str) -> bool:
    counts = english_word_counts()
    return any(any(counts.get(word, 0) < RARE_NAME_WORD_COUNT and not word.endswith(_NOUN_ENDINGS)
                   for word in match.group(0).lower().split())
               for match in _NAME.finditer(text))


def stem(word: str) -> str:
    """The word's stem as search.analysis stems it, or "" for a stop word."""
    terms = analyze(word)
    return terms[0] if terms else ""


@dataclass(frozen=True)
class QuestionType:
    wants: frozenset[str]
    identifiers: tuple[str, ...]
    asks_metadata: bool
    # The stem of the noun a "how many/much" question counts ("dai" for "how many PTO days"), or "".
    measure: str = ""

    def holds_measured(self, text: str) -> bool:
        """Whether the text states a number of the counted thing ("20 days" for "how many PTO days"), or names a
        person (a full name, an email address) for a question asking who."""
        if PERSON in self.wants and (_EMAIL.search(text) or _names_someone(text)):  # "who is …": not just a role
            return True
        if not self.measure:
            return False
        if self.measure in _MONEY_MEASURES and MONEY.search(text):
            return True
        tokens = _AMOUNT_TOKEN.findall(text.lower())
        return any((token[:1].isdigit() or token[:1] in "$€£" or token in _NUMBER_WORDS)
                   and stem(following) == self.measure for token, following in pairwise(tokens))

    def holds(self, kind: str, text: str, unit_kind: str) -> bool:
        """Whether a unit (of `unit_kind`, "sentence", "row", "list"…) holds the kind of fact wanted."""
        if kind == STEPS:
            return unit_kind in ("list", "item", "code")
        if kind == LIST:
            return unit_kind in ("list", "table")
        if kind == PERSON:
            return bool(_HOLDS[PERSON].search(text) or _NAME.search(text))
        return bool(_HOLDS[kind].search(text))

    def holds_identifier(self, text: str) -> bool:
        lowered = text.lower()
        return any(identifier.lower() in lowered for identifier in self.identifiers)


def classify(question: str) -> QuestionType:
    wants = frozenset(kind for kind, pattern in _ASKS.items() if pattern.search(question))
    identifiers = [m.group(1) or m.group(2) for m in _CODED.finditer(question)]
    if _WHAT_IS.search(question):
        identifiers.extend(m.group(0) for m in _COMPOUND.finditer(question))
        identifiers.extend(m.group(0) for m in _ACRONYM.finditer(question) if m.group(0) != "I")
    measured = _MEASURE.search(question)
    measure = stem(measured.group(1).split()[-1]) if measured and measured.group(1).strip() else ""
    return QuestionType(wants, tuple(dict.fromkeys(i for i in identifiers if len(i) > 1)),
                        bool(_ASKS_METADATA.search(question)), measure)


# "… and the lodging cap", ", and what …": the start of a second request, not a phrase like "sick time and leave".
_AND_PART = re.compile(
    r"\s*,?\s+(?:and|as well as|plus|also)\s+(?=(?:also\s+)?(?:the|a|an|my|our|your|their|its|what|what's|how|when|"
    r"who|where|which|whether|is|are|can|do|does|should)\b)", re.IGNORECASE)
_OPENER = re.compile(
    r"^\W*(?:what(?:'s|s| is| are| was| were)?|how (?:much|many|long|often|do|does|can|should)(?: \w+)?|"
    r"when (?:is|are|do|does|can|should)|who (?:is|are|do|does|can|should)|where (?:is|are|do|does|can)|"
    r"which|is|are|can|do|does)\b", re.IGNORECASE)
_TRAILING_SCOPE = re.compile(
    r"\s+(?:in|for|at|on|during|from|under|within)\s+[^,?]+?(?=\??\s*$)", re.IGNORECASE)
_NO_SPLIT = re.compile(r"\b(?:between|both|difference|diff|compare)\b", re.IGNORECASE)
# "the screen lock timeout vs the VPN idle disconnect": two facts, each looked up alone.
_VERSUS = re.compile(r"\s+(?:vs\.?|versus|compared (?:to|with))\s+", re.IGNORECASE)
_LEADING_JOINER = re.compile(r"^\W*(?:and|also|plus)\b[\s,]*(?:also\b\s*)?", re.IGNORECASE)
_PRONOUN = re.compile(r"\b(?:it|its|they|them|their|this|that|these|those|one)\b", re.IGNORECASE)
_QUESTION_WORDS = re.compile(
    r"\b(?:what(?:'s)?|which|who|whom|whose|when|where|why|how|much|many|long|is|are|was|were|do|does|did|can|"
    r"could|should|would|will|i|me|my|we|our|you|your|the|a|an|of|to|for|in|on|at|and|or|also|get|it|its|they|"
    r"them|their|this|that|these|those|send|one)\b", re.IGNORECASE)
MAX_PARTS = 3


def _subject(part: str) -> str:
    """A part's words that say what it is about ("deadline for self-reviews"), for a later part's "it"."""
    return " ".join(_QUESTION_WORDS.sub(" ", part.rstrip("?")).split())


def split_parts(question: str) -> list[str]:
    """The separate requests in a question ("what's the per diem and the lodging cap in Austin?" → two), each
    readable alone; a question asking one thing comes back as itself."""
    sentences = [s.strip() for s in re.split(r"(?<=\?)\s+", question.strip()) if re.search(r"\w", s)]
    parts: list[str] = []
    for sentence in sentences:
        sentence = _LEADING_JOINER.sub("", sentence) if parts else sentence
        pieces, sides = [sentence], [sentence]
        if not _NO_SPLIT.search(sentence):
            sides = _VERSUS.split(sentence)
            pieces = [p.strip() for side in sides for p in _AND_PART.split(side)]
        pieces = [p for p in pieces if re.search(r"\w", p)]
        if len(pieces) > 1:
            opener = _OPENER.match(pieces[0])
            # "… in Austin" scopes every request joined by "and"; the sides of "A vs B" each say their own.
            scope = _TRAILING_SCOPE.search(pieces[-1]) if len(sides) == 1 else None
            completed = []
            for index, piece in enumerate(pieces):
                if index and opener and not _OPENER.match(piece):
                    piece = f"{opener.group(0).strip()} {piece}"
                if scope and index < len(pieces) - 1 and scope.group(0).strip().lower() not in piece.lower():
                    piece = f"{piece.rstrip('?')}{scope.group(0)}"
                completed.append(piece)
            pieces = completed
        for piece in pieces:
            # "… and who do I send it to?": the later part's "it" is the earlier part's subject.
            if parts and _PRONOUN.search(piece):
                piece = f"{piece} ({_subject(parts[-1])})"
            parts.append(piece)
    if len(parts) > MAX_PARTS:
        return [question]
    return parts or [question]
