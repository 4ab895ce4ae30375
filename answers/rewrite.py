"""Turn a follow-up question into a standalone search query using the conversation so far.

Only a question that depends on the conversation is rewritten: one with a pronoun or demonstrative that nothing in
the question itself can refer to ("can I carry them over?"), or an elliptical fragment ("and for contractors?",
"what about austin?", "same for managers"). Anything else is a question of its own (a new topic) and is searched as
asked. A follow-up is rewritten from the previous turn's topic, never its whole question: the key noun phrases of
the query that turn was searched as (its own rewrite, for a follow-up of a follow-up), ranked by how much they share
with the titles and sections its answer cited. The pronoun is replaced by that topic where there is one to replace;
a fragment that names an alternative to part of the previous query ("what about austin?" after a question on parking
at Portland HQ; found by embedding similarity) asks that query again with the alternative in its place, and any
other fragment gets the topic beside it.

Without a part-of-speech tagger this is a heuristic on purpose: it errs towards leaving a question alone. With an LLM
composer configured, the LLM rewrites instead (prompts/rewrite_v1.txt); if that fails, the heuristic answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from answers.types import ComposerError, Turn
from core.config import current
from search.analysis import analyze

logger = logging.getLogger("citewise.answering.rewrite")

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\w\s]")


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_AUXILIARIES = _set(
    "do does did doing done is are was were be been being am can could will would shall should may might must "
    "have has had having isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't "
    "shouldn't i'm i've i'd i'll it's that's what's there's how's where's who's"
)
# Words that never name a topic: question words, pronouns, determiners, prepositions, conjunctions, fillers, and
# verbs too general to search for.
_FUNCTION_WORDS = _AUXILIARIES | _set(
    "what whats which who whom whose when where why how i me my mine myself you your yours we us our ours it its "
    "they them their theirs he him his she her hers this that these those one ones there here someone anyone "
    "anybody somebody everyone everybody anything something everything nothing a an the any some each every all "
    "no none much many more most few fewer less least other another same such own both either neither and or but "
    "nor so if then than as at by for from in into of on onto to with without about after before over under "
    "during between per via within across around up down out off also too again just only still even else not "
    "yes ok okay please thanks thank hi hello hey now really very actually maybe exactly well "
    "get gets got getting know tell find want like make makes go goes going use using take takes see say let "
    "happen happens mean means apply applies work works need needs count counts cover covers include includes "
    "true possible allowed"
)
_PERSON_PRONOUNS = frozenset({"he", "him", "his", "she", "her", "hers"})
_DETERMINERS = _set(
    "a an the my your our his her their its this that these those each every any some no which"
)
_DEICTIC_NOUNS = _set(
    "year years month months week weeks quarter time morning afternoon evening weekend summer winter spring fall "
    "autumn season semester"
)
# After "it" (or "is it"/"it's"), these make "it" a placeholder subject, not a reference: "is it possible to …".
_EXPLETIVE_FOLLOWERS = _set(
    "possible ok okay true allowed necessary required mandatory normal safe legal fine worth important better "
    "best enough likely common appropriate acceptable permitted easy hard difficult too ever always"
)
_EXISTENTIAL_BE = _set("is are was were be isn't aren't wasn't weren't there's will")
_COMPLEMENT_VERBS = _set("true sure mean means know say said think given so possible clear")
_ONE_MODIFIERS = _set(
    "the this that which a an another other same new old older newer latest current previous last next first "
    "second"
)
_OPENERS = re.compile(
    r"^\s*(?:(?:and|but|ok(?:ay)?|so)[\s,]+)?(?:what\s+about|how\s+about|what\s+of|what\s+if|(?:the\s+)?same\s+"
    r"(?:question\s+)?(?:for|with|about|in|at)|and|also|plus|or|but|then)\b[\s,:]*",
    re.IGNORECASE,
)
_PREPOSITION_START = re.compile(
    r"^\s*(?:for|in|at|with|during|after|before|outside|inside|on|from|under|over|without|within)\b", re.IGNORECASE)
# "new topic: …", "unrelated - …", "btw …": the asker says the question stands alone. The marker is dropped (it
# names nothing to search for) and the conversation is not consulted.
_TOPIC_SWITCH = re.compile(
    r"^\s*(?:(?:ok(?:ay)?|so|also|and|hey|oh)[\s,]+)*(?:"
    r"(?:(?:switching|changing|change\s+of)\s+(?:the\s+)?(?:topics?|subjects?|gears))"
    r"|(?:(?:a\s+)?(?:(?:totally|completely|slightly|somewhat|entirely)\s+)?"
    r"(?:new|different|another|other|unrelated|separate|random)\s+(?:topic|subject|question|q|thing|one)s?)"
    r"|(?:on\s+(?:(?:a|an)\s+)?(?:different|other|another|unrelated|separate)\s+(?:note|topic|subject))"
    r"|btw|by\s+the\s+way"
    r")(?:\s*[:\-\u2013\u2014,.!;]+\s*|\s+)"
    r"|^\s*(?:(?:ok(?:ay)?|so|also|and|hey|oh)[\s,]+)*(?:unrelated|different|separate|random)\s*[:\-\u2013\u2014;]+\s*",
    re.IGNORECASE,
)
# After "how" these ask for a measure ("how long is a PIP"); they are not the topic.
_MEASURE_WORDS = _set("long often soon far big many much old late early")
_MAX_FRAGMENT_CONTENT_WORDS = 4
# How similar (cosine, the embedding model's) a fragment must be to a phrase of the previous topic, and by how much
# more than to any other, to take its place: "austin" and "Portland HQ" are alternatives, "austin" and "park" not.
_CONTRAST_SIMILARITY = 0.35
# How much of the previous turn's topic a question that needs it after all is searched with.
_CONTEXT_PHRASES = 2
_CONTRAST_MARGIN = 0.05


@dataclass(frozen=True)
class _Word:
    text: str
    start: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower().replace("’", "'")

    @property
    def is_content(self) -> bool:
        return self.text[0].isalnum() and self.lower not in _FUNCTION_WORDS


def _words(text: str) -> list[_Word]:
    return [_Word(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def topic_switch(question: str) -> str | None:
    """The question without a marker saying it changes the subject ("new topic: whats the austin address" → "whats
    the austin address"), or None when it has none."""
    marker = _TOPIC_SWITCH.match(question)
    if marker is None or not question[marker.end():].strip():
        return None
    return question[marker.end():].strip()


def _phrases(text: str) -> list[str]:
    """Runs of adjacent content words, in order: the noun phrases a question names, near enough."""
    phrases: list[str] = []
    run: list[_Word] = []
    previous = ""
    for word in [*_words(text), _Word(".", len(text), len(text))]:
        measure = previous == "how" and word.lower in _MEASURE_WORDS
        previous = word.lower
        if word.is_content and not measure:
            run.append(word)
        elif run:
            phrases.append(text[run[0].start:run[-1].end])
            run = []
    return list(dict.fromkeys(phrases))


def _is_plural(word: str) -> bool:
    lower = word.lower()
    return len(lower) > 3 and lower.endswith("s") and not lower.endswith(("ss", "us", "is"))


def _antecedents(words: Sequence[_Word], before: int) -> tuple[bool, bool, bool]:
    """Whether the question names, before word `before`, a singular thing, plural things, a person by name."""
    singular = plural = person = False
    for i, word in enumerate(words[:before]):
        if not word.is_content:
            continue
        after_determiner = any(words[j].lower in _DETERMINERS for j in range(max(0, i - 2), i)
                               if all(words[k].is_content for k in range(j + 1, i)))
        capitalised = i > 0 and word.text[0].isupper()
        plural = plural or _is_plural(word.text)  # "when new employees start, do they …"
        if after_determiner or capitalised:
            singular = singular or not _is_plural(word.text)
            person = person or (capitalised and not word.text.isupper())
    return singular, plural, person


@dataclass(frozen=True)
class _Anaphor:
    """A word in the question that refers to something the question itself does not name."""

    word: _Word
    standalone: bool  # a pronoun ("carry them over"), not a determiner before a noun ("this policy")
    plural: bool


def _anaphor(question: str) -> _Anaphor | None:
    words = _words(question)
    for i, word in enumerate(words):
        lower = word.lower
        previous = words[i - 1].lower if i > 0 else ""
        following = words[i + 1] if i + 1 < len(words) else None
        next_lower = following.lower if following else ""
        next_is_content = following is not None and following.is_content
        singular, plural, person = _antecedents(words, i)
        if lower in ("it", "its"):
            rest = [w.lower for w in words[i + 1:i + 4] if w.lower not in ("be", "really", "still", "also")]
            expletive = lower == "it" and (
                (rest and rest[0] in _EXPLETIVE_FOLLOWERS)
                or (rest and rest[0] in ("take", "takes", "cost", "costs") and "to" in (w.lower for w in words[i:])))
            if not expletive and not singular:
                return _Anaphor(word, True, False)
        elif lower == "it's":
            if next_lower not in _EXPLETIVE_FOLLOWERS and not singular:
                return _Anaphor(word, True, False)
        elif lower in ("this", "that"):
            ends = following is None or not following.text[0].isalnum()
            if lower == "that" and not ends and (previous in _COMPLEMENT_VERBS or (i > 0 and words[i - 1].is_content)):
                continue  # "is it true that …", "a policy that covers …": a conjunction or a relative pronoun
            if next_is_content and following is not None:
                if _is_plural(following.text) or next_lower in _DEICTIC_NOUNS:
                    continue  # "that contractors get …", "this year"
                return _Anaphor(word, False, False)
            if not singular:
                return _Anaphor(word, True, False)
        elif lower in ("these", "those"):
            if next_is_content:
                return _Anaphor(word, False, True)
            if not plural:
                return _Anaphor(word, True, True)
        elif lower in ("they", "them", "their", "theirs"):
            if not plural and not person:
                return _Anaphor(word, True, True)
        elif lower in _PERSON_PRONOUNS:
            if not person:
                return _Anaphor(word, True, False)
        elif lower == "there":
            if previous not in _EXISTENTIAL_BE and next_lower not in _EXISTENTIAL_BE and next_lower != "'s":
                return _Anaphor(word, True, False)
        elif lower in ("one", "ones"):
            if (previous in _ONE_MODIFIERS or words[i - 1].text.isdigit() if i > 0 else False) and not next_is_content:
                return _Anaphor(word, True, lower == "ones")
        elif lower == "same" and previous == "the" and not next_is_content:
            return _Anaphor(word, False, False)
    return None


def _fragment(question: str) -> str | None:
    """The rest of an elliptical follow-up ("and for contractors?" → "for contractors"), or None for a full
    question. A fragment has no verb of its own to ask with, and few words."""
    opener = _OPENERS.match(question)
    if opener and opener.end() > 0:
        rest = question[opener.end():]
    elif _PREPOSITION_START.match(question):
        rest = question
    else:
        return None
    words = _words(rest)
    if any(w.lower in _AUXILIARIES for w in words) and not re.match(r"\s*what\s+if\b", question, re.I):
        return None
    if sum(w.is_content for w in words) > _MAX_FRAGMENT_CONTENT_WORDS:
        return None
    return rest.strip().rstrip("?.!").strip()


def depends_on_conversation(question: str) -> bool:
    """Whether the question needs an earlier turn to mean anything: a fragment, or a reference without a referent."""
    return _fragment(question) is not None or _anaphor(question) is not None


def _stems(text: str) -> set[str]:
    return set(analyze(text))


def topic(turn: Turn) -> list[str]:
    """The turn's topic: the phrases of the query it was searched as, those its answer's sources share words with
    first (all of them when it cited nothing or none do)."""
    phrases = _phrases(turn.search_query or turn.question)
    cited = _stems(" ".join(turn.sources))
    shared = [(len(_stems(phrase) & cited), -position, phrase) for position, phrase in enumerate(phrases)]
    salient = [phrase for overlap, _, phrase in sorted(shared, reverse=True) if overlap]
    return salient or phrases


Similarity = Callable[[str, Sequence[str]], Sequence[float]]


def embedding_similarity(text: str, others: Sequence[str]) -> list[float]:
    """Cosine similarity of `text` to each of `others` under the configured embedding model, at full precision (the
    bars this is read against were set on the model's own vectors)."""
    from retrieval.embeddings import get_embedder

    vectors = get_embedder(current().embedding_model).full_precision().embed_documents([text, *others])
    return [float(np.dot(vectors[0], vector)) for vector in vectors[1:]]


def _contrasted(fragment: str, phrases: Sequence[str], similarity: Similarity) -> str | None:
    """The phrase of the previous topic the fragment is an alternative to, if one clearly is."""
    own = " ".join(_phrases(fragment))
    # "three years" refines "per year" rather than replacing it; "sick days" is an alternative to "PTO days"
    phrases = [p for p in phrases if not (_stems(p) <= _stems(own) or _stems(own) <= _stems(p))]
    if not own or not phrases:
        return None
    scores = list(similarity(own, phrases))
    best = max(range(len(phrases)), key=scores.__getitem__)
    runner_up = max((s for i, s in enumerate(scores) if i != best), default=0.0)
    if scores[best] >= _CONTRAST_SIMILARITY and scores[best] - runner_up >= _CONTRAST_MARGIN:
        return phrases[best]
    return None


def _replace(question: str, anaphor: _Anaphor, phrases: Sequence[str]) -> str:
    """The question with the pronoun replaced by the topic's main phrase (a plural one for "them"), and the rest of
    the topic, or all of it where the referring word is a determiner ("this policy"), added after it."""
    if anaphor.word.lower in ("one", "ones"):
        # "the 2025 one": the thing the topic names, not its number or year
        fitting = [p for p in phrases if not any(c.isdigit() for c in p)]
    else:
        fitting = [p for p in phrases if _is_plural(p.split()[-1]) == anaphor.plural]
    main = (fitting or list(phrases))[0]
    if anaphor.standalone:
        word = anaphor.word
        question = question[:word.start] + main + question[word.end:]
    rest = [p for p in phrases if p.lower() not in question.lower()]
    return f"{question.rstrip().rstrip('?.!')} ({', '.join(rest)})" if rest else question


def _resolve_fragment(fragment: str, previous_query: str, phrases: Sequence[str], similarity: Similarity) -> str:
    """A fragment that names an alternative to part of the previous query asks that query again about the
    alternative ("what about austin?" after "Where can I park at the Portland HQ?": "Where can I park at austin?");
    any other fragment gets the previous topic beside it ("PTO days, after three years")."""
    replaced = _contrasted(fragment, _phrases(previous_query), similarity)
    if replaced is not None:
        at = previous_query.find(replaced)
        before = re.sub(r"\b(?:the|a|an)\s+$", "", previous_query[:at], flags=re.IGNORECASE)
        return before + " ".join(_phrases(fragment)) + previous_query[at + len(replaced):]
    anaphor = _anaphor(fragment)
    if anaphor is not None:
        fragment = _replace(fragment, anaphor, phrases)
    kept = [p for p in phrases if p.lower() not in fragment.lower()]
    return ", ".join([*kept, fragment]) if fragment else ", ".join(kept)


def resolve_follow_up(question: str, previous: Turn, similarity: Similarity = embedding_similarity) -> str:
    """The question as a standalone query, given the turn before it; the question itself when it stands alone."""
    if not depends_on_conversation(question):
        return question
    phrases = topic(previous)
    if not phrases:
        return question
    fragment = _fragment(question)
    if fragment is not None:
        return _resolve_fragment(fragment, previous.search_query or previous.question, phrases, similarity)
    anaphor = _anaphor(question)
    return _replace(question, anaphor, phrases) if anaphor is not None else question


def in_context(question: str, history: Sequence[Turn]) -> str | None:
    """The question with the latest turn's topic beside it, for a question that seemed to stand alone but that
    nothing answers on its own ("engineering laptop refresh cycle" then "how long do i have to hand the old one
    back"): None without history, for a question already resolved against it, or one that says it changes the
    subject."""
    if not history or topic_switch(question) is not None or depends_on_conversation(question):
        return None
    phrases = [p for p in topic(history[-1]) if p.lower() not in question.lower()][:_CONTEXT_PHRASES]
    return f"{question.rstrip().rstrip('?.!')} ({', '.join(phrases)})" if phrases else None


def rewrite_query(question: str, history: Sequence[Turn]) -> str:
    """The question alone if it stands alone; else resolved against the latest turn's topic (resolve_follow_up).
    A marker changing the subject ("unrelated - …") is dropped, and the question searched on its own.

    With an LLM composer configured, the LLM rewrites it (prompts/rewrite_v1.txt); if that fails,
    the heuristic answers.
    """
    switched = topic_switch(question)
    if switched is not None:
        return switched
    if not history:
        return question
    if current().composer != "extractive":
        try:
            from answers.llm import rewrite_with_llm

            return rewrite_with_llm(question, history)
        except (ComposerError, ImportError) as exc:
            logger.warning("LLM query rewrite failed, using the heuristic: %s", exc)
    return resolve_follow_up(question, history[-1])
