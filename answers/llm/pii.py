"""Personal data kept from external LLMs: email addresses, phone numbers, payment card numbers, IBANs and US social
security numbers in the question, the conversation and the passages are replaced by placeholders (`[EMAIL_1]`)
before a composer sends them out, and put back in what comes back, for the asker.

Detection validates what it finds rather than matching shapes alone: phone numbers by Google's libphonenumber
(`phonenumbers`, numbers valid in `CITEWISE_PII_PHONE_REGION` or written with a country code), card numbers by their
Luhn check digit, IBANs by their ISO 13616 checksum and SSNs by the SSA's rules (`python-stdnum`), so dates,
prices, versions and order numbers pass through. One value is one placeholder wherever it appears (the model can
still tell "the same address" apart from "another"); the placeholders never leave this process with their values.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import phonenumbers
from prometheus_client import Counter as MetricCounter
from stdnum import iban, luhn
from stdnum.us import ssn

from answers.types import Composer, Composition, Passage, Turn

logger = logging.getLogger("citewise.answering.pii")

REDACTIONS = MetricCounter("citewise_pii_redactions_total", "Values replaced by placeholders before an external LLM call",
                           ["kind"])

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
PLACEHOLDER = re.compile(r"\[(?:EMAIL|IBAN|CARD|NATIONAL_ID|PHONE)_\d+\]")


class Redactor:
    """Placeholders for one exchange with an LLM: what was replaced, and how to put it back."""

    def __init__(self, phone_region: str = "US") -> None:
        self.phone_region = phone_region
        self.originals: dict[str, str] = {}  # placeholder -> the value as first written
        self._placeholders: dict[tuple[str, str], str] = {}  # (kind, normalised value) -> placeholder
        self._numbered: Counter[str] = Counter()  # distinct values per kind so far: the next placeholder's number
        self.counts: Counter[str] = Counter()  # values replaced per kind, repeats included

    def _found(self, text: str) -> list[tuple[int, int, str, str]]:
        """(start, end, kind, normalised value) of every value to replace, none overlapping, in text order; kinds
        earlier in the list win an overlap (an email's digits are not a phone number)."""
        candidates: list[tuple[int, int, str, str]] = []
        candidates += [(m.start(), m.end(), "EMAIL", m.group().lower()) for m in _EMAIL.finditer(text)]
        for match in _IBAN.finditer(text):
            compact = iban.compact(match.group())
            if iban.is_valid(compact):
                candidates.append((match.start(), match.end(), "IBAN", compact))
        for match in _CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
                candidates.append((match.start(), match.end(), "CARD", digits))
        candidates += [(m.start(), m.end(), "NATIONAL_ID", m.group()) for m in _SSN.finditer(text)
                       if ssn.is_valid(m.group())]
        for found in phonenumbers.PhoneNumberMatcher(text, self.phone_region, leniency=phonenumbers.Leniency.VALID):
            candidates.append((found.start, found.end, "PHONE",
                               phonenumbers.format_number(found.number, phonenumbers.PhoneNumberFormat.E164)))
        kept: list[tuple[int, int, str, str]] = []
        for candidate in candidates:  # in priority order: the first kind to claim characters keeps them
            if all(candidate[1] <= start or candidate[0] >= end for start, end, _, _ in kept):
                kept.append(candidate)
        return sorted(kept)

    def redact(self, text: str) -> str:
        if not text:
            return text
        pieces, last = [], 0
        for start, end, kind, value in self._found(text):
            placeholder = self._placeholders.get((kind, value))
            if placeholder is None:
                self._numbered[kind] += 1
                placeholder = f"[{kind}_{self._numbered[kind]}]"
                self._placeholders[(kind, value)] = placeholder
                self.originals[placeholder] = text[start:end]
            self.counts[kind] += 1
            pieces += [text[last:start], placeholder]
            last = end
        return "".join([*pieces, text[last:]])

    def restore(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.originals.get(m.group(), m.group()), text)

    def restore_with_spans(self, text: str, spans: Sequence[tuple[int, int, Any]]) -> tuple[str, list[tuple[int, int, Any]]]:
        """The text restored, and (start, end, …) spans of it moved to where they now fall."""
        shifts: list[tuple[int, int]] = []  # (offset in the old text after which, added length)
        for match in PLACEHOLDER.finditer(text):
            original = self.originals.get(match.group())
            if original is not None:
                shifts.append((match.end(), len(original) - len(match.group())))

        def moved(offset: int) -> int:
            return offset + sum(delta for end, delta in shifts if end <= offset)

        return self.restore(text), [(moved(start), moved(end), *rest) for start, end, *rest in spans]

    def passage(self, passage: Passage) -> Passage:
        hit = dataclasses.replace(passage.hit, title=self.redact(passage.hit.title), text=self.redact(passage.hit.text),
                                  heading_path=tuple(self.redact(h) for h in passage.hit.heading_path))
        return dataclasses.replace(passage, hit=hit, text=self.redact(passage.text))

    def turn(self, turn: Turn) -> Turn:
        return dataclasses.replace(turn, question=self.redact(turn.question), answer=self.redact(turn.answer),
                                   search_query=self.redact(turn.search_query),
                                   sources=tuple(self.redact(s) for s in turn.sources))

    def report(self, what: str) -> None:
        for kind, count in self.counts.items():
            REDACTIONS.labels(kind.lower()).inc(count)
        if self.counts:
            logger.info("%s: %s replaced by placeholders before the call", what,
                        ", ".join(f"{count} {kind.lower()}" for kind, count in sorted(self.counts.items())))


class RedactingComposer:
    """An external composer that never sees the personal data of what it is given (module docstring)."""

    def __init__(self, inner: Any, phone_region: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.phone_region = phone_region

    def compose(self, question: str, passages: Sequence[Passage], *, history: Sequence[Turn] = ()) -> Composition:
        redactor = Redactor(self.phone_region)
        composition = self.inner.compose(redactor.redact(question), [redactor.passage(p) for p in passages],
                                         history=[redactor.turn(t) for t in history])
        redactor.report(f"{self.name} answer")
        text, native = redactor.restore_with_spans(composition.text, composition.native_citations)
        return dataclasses.replace(composition, text=text, native_citations=native)

    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        redactor = Redactor(self.phone_region)
        rewritten = self.inner.rewrite(redactor.redact(question), [redactor.turn(t) for t in history])
        redactor.report(f"{self.name} query rewrite")
        return redactor.restore(rewritten)


def redacting(composer: Composer, *, enabled: bool, phone_region: str) -> Composer:
    """The composer, behind redaction when `enabled` (CITEWISE_PII_REDACTION, on by default)."""
    return RedactingComposer(composer, phone_region) if enabled else composer
