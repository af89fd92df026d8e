"""NER: the model re-emits the sentence with each entity wrapped in a span tag.

The output protocol follows the benchmark: ``<span class="chemical">cisplatin</span>``. The
parser strips the tags, tokenizes the rest like the benchmark files (punctuation split off),
aligns those tokens to the gold tokens (longest matching blocks, so rewording or dropped words
elsewhere do not shift the spans) and turns the tagged tokens into IOB2 tags over the *gold*
tokens, so spans are compared on the benchmark's own tokenization. Tags named after the entity
type (``<chemical>...</chemical>``, ``<drug>``, ``<entity>``) count as span tags; tags of
another dataset's type (``<disease>`` when chemicals are asked for) are not entities.

A model that answers with the entities instead has each string tagged wherever it occurs in
the sentence: a JSON list of strings or of objects (``{"text": ..., "start": ..., "type":
...}``: the string is read, the type must be this dataset's, offsets counted by the model are
not trusted over the string), a JSON object holding such a list under the type's name or
"entities", a bullet list, a comma-separated list, a heading line ("Chemicals: a, b"), each
item possibly in bold or with a type suffix ("haloperidol (chemical)"; an item typed as
another dataset's type is left out). An empty JSON list, "none" after the type's heading
("Diseases: none") or a statement that there is none is "no entity"; so is the sentence echoed
without tags.
"""

from __future__ import annotations

import difflib
import html
import re
from functools import cache
from typing import Any

from biomedquant.datasets.readers import Record
from biomedquant.datasets.registry import DATASETS, DatasetSpec
from biomedquant.tasks.json_answer import answer_field, json_value, norm_key
from biomedquant.tasks.metrics import iob2_spans, ner_scores
from biomedquant.tasks.text import (
    EMPTY,
    NO_ANSWER,
    OK,
    answer_segment,
    clean,
    cut_follow_up,
    paragraphs,
)

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
# Tag names that mark an entity of whatever type (besides the type's own words).
_GENERIC_TAGS = ("span", "entity", "ent")
# Entity types of biomedical NER in general: an item a model types as one of these (or as
# another dataset's type) is not an entity of the type asked for ("BRCA1 (gene)").
ENTITY_TYPE_NAMES = frozenset(
    ("gene", "genes", "protein", "proteins", "gene/protein", "species", "organism", "cell line")
    + ("cell type", "mutation", "variant", "anatomy", "symptom", "procedure", "dna", "rna")
)
# Fields of a JSON entity object that hold its string, and those that hold its type.
_STRING_KEYS = ("text", "entity", "name", "mention", "span", "word", "value", "string")
_TYPE_KEYS = ("type", "label", "entity_type", "category", "class", "tag")
# Keys of a JSON object whose list is the answer whatever the type.
_LIST_KEYS = ("entities", "entity", "mentions", "answer", "result", "results", "output")
# What says, on a line of its own or after the type's heading, that there is no entity.
_NONE_WORDS = (
    r"(?:none|nothing|nil|n/?a|no\s+entit(?:y|ies)|no\s+mentions?|\[\s*\])"
    r"(?:\s+(?:found|identified|detected|present|mentioned))?"
)
_NONE_LINE = re.compile(rf"^\W*{_NONE_WORDS}\W*$", re.IGNORECASE)
# A trailing type in parentheses or after a dash or colon ("haloperidol (chemical)").
_TYPE_SUFFIX = re.compile(r"^(.*?)\s*(?:\(([^()]*)\)|\s[-\u2013:]\s*([\w ]+)|:\s*([\w ]+))$")
# A heading line's words after the type ("Chemicals found:", "Disease mentions:").
_HEADING = re.compile(r"^[\W_]*([A-Za-z][\w ]*?)[\W_]*\s*[:=][\W_]*\s*(.*)$")
_HEADING_TAIL = re.compile(r"\s+(?:found|mentioned|identified|mentions|entities|names)$")
_DESCRIPTION = re.compile(r"^(.*?)\s*(?:\([^()]*\)|\s[-\u2013\u2014:]\s.*)$")


def description(spec: DatasetSpec) -> str:
    etype = spec.labels[0]
    return (
        f"Find every {etype} mentioned in a sentence. Copy the sentence exactly and wrap each "
        f'{etype} mention in <span class="{etype}"> and </span>. Change nothing else and '
        "output only the tagged sentence."
    )


def render_input(spec: DatasetSpec, rec: Record) -> str:
    return "Sentence: " + " ".join(rec["tokens"])


def headers(spec: DatasetSpec) -> tuple[str, ...]:
    """The line that starts the next example in the prompt format."""
    return ("Sentence:",)


def render_answer(spec: DatasetSpec, rec: Record) -> str:
    """The gold sentence in the output protocol (used for few-shot examples)."""
    etype = spec.labels[0]
    words = list(rec["tokens"])
    for start, end in sorted(iob2_spans(rec["tags"]), reverse=True):
        words[start:end] = [f'<span class="{etype}">' + " ".join(words[start:end]) + "</span>"]
    return " ".join(words)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _type_key(spec: DatasetSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What the type words of ``spec`` depend on, hashable (a spec holds dicts)."""
    synonyms = tuple(w for lab in spec.labels for w in spec.label_synonyms.get(lab, ()))
    return spec.labels, synonyms


@cache
def _words(key: tuple[tuple[str, ...], tuple[str, ...]]) -> frozenset[str]:
    return frozenset(w.lower() for w in (*key[0], *key[1]))


def type_words(spec: DatasetSpec) -> frozenset[str]:
    """The words that name the entity type of ``spec`` ("chemical", "drugs" ...), lower case."""
    return _words(_type_key(spec))


@cache
def _other_words(key: tuple[tuple[str, ...], tuple[str, ...]], task: str) -> frozenset[str]:
    others = {w for d in DATASETS.values() if d.task == task for w in type_words(d)}
    return frozenset(others - _words(key))


def other_type_words(spec: DatasetSpec) -> frozenset[str]:
    """The words of every other NER dataset's entity type: an item or a tag so typed is not an
    entity of ``spec``."""
    return _other_words(_type_key(spec), spec.task)


def _alternation(words: frozenset[str]) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len)[::-1])


@cache
def _tag_regexes(
    key: tuple[tuple[str, ...], tuple[str, ...]], task: str
) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    names = _alternation(frozenset({*_GENERIC_TAGS, *_words(key)}))
    opening = re.compile(rf"<\s*(?:{names})\b[^<>]*>", re.IGNORECASE)
    closing = re.compile(rf"<\s*/\s*(?:{names})\s*>", re.IGNORECASE)
    other = _alternation(_other_words(key, task)) or "(?!)"
    foreign = re.compile(rf"<\s*/?\s*(?:{other})\b[^<>]*>", re.IGNORECASE)
    return opening, closing, foreign


def _tag_patterns(spec: DatasetSpec) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(opening tag, closing tag) of an entity of ``spec``, and the tags of other types (removed,
    their text kept as plain text)."""
    return _tag_regexes(_type_key(spec), spec.task)


def _tagged_tokens(text: str, spec: DatasetSpec) -> tuple[list[str], list[int | None]]:
    """Tokens of ``text`` with tags removed, and the entity number each token belongs to.

    Unclosed spans end at the end of the output; nested spans count as one entity.
    """
    opening, closing, foreign = _tag_patterns(spec)
    tag = re.compile(f"({opening.pattern}|{closing.pattern})", re.IGNORECASE)
    tokens: list[str] = []
    owner: list[int | None] = []
    depth = 0
    entity = -1
    for piece in tag.split(foreign.sub(" ", html.unescape(text))):
        if opening.fullmatch(piece):
            if depth == 0:
                entity += 1
            depth += 1
        elif closing.fullmatch(piece):
            depth = max(0, depth - 1)
        else:
            for tok in tokenize(piece):
                tokens.append(tok)
                owner.append(entity if depth else None)
    return tokens, owner


def _sub_tokens(gold_tokens: list[str]) -> list[tuple[str, int]]:
    """Gold tokens re-tokenized ("IL-2" -> "IL", "-", "2"), each with its gold index."""
    return [
        (piece.lower(), gi)
        for gi, tok in enumerate(gold_tokens)
        for piece in tokenize(tok) or [tok]
    ]


def _mark(tags: list[str], start: int, end: int) -> None:
    """Tag gold tokens start..end (inclusive) as one entity unless it overlaps an earlier one."""
    if any(tags[i] != "O" for i in range(start, end + 1)):
        return
    tags[start] = "B"
    for i in range(start + 1, end + 1):
        tags[i] = "I"


class _OtherType(str):
    """An item the model typed as another dataset's entity type."""


def _in_sentence(string: str, gold_tokens: list[str]) -> bool:
    target = [t.lower() for t in tokenize(string)]
    words = [w for w, _ in _sub_tokens(gold_tokens)]
    return bool(target) and any(
        words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1)
    )


def _typed_as(word: str, spec: DatasetSpec) -> str | None:
    """Whether ``word`` names this dataset's type ("own"), another dataset's or another
    biomedical entity type ("other"), or no type (None)."""
    word = re.sub(r"\s+", " ", word.strip().lower())
    if word in type_words(spec):
        return "own"
    return "other" if word in other_type_words(spec) | ENTITY_TYPE_NAMES else None


def _item(piece: str, gold_tokens: list[str], spec: DatasetSpec) -> str | None:
    """The entity string an item of a list names, as found in the sentence: emphasis, quotes,
    a type suffix of this dataset's type and a trailing description are dropped. An item typed
    as another dataset's type is an :class:`_OtherType`; an item not in the sentence ``None``."""
    piece = clean(piece).strip().strip("\"'").strip()
    piece = re.sub(r"^(?:and|or)\s+", "", piece, flags=re.IGNORECASE).rstrip(" .;,")
    suffix = _TYPE_SUFFIX.match(piece)
    if suffix:
        typed = _typed_as(next(g for g in suffix.groups()[1:] if g is not None), spec)
        if typed == "other":
            return _OtherType(suffix.group(1))
        if typed == "own":
            piece = suffix.group(1).strip().strip("\"'")
    if _in_sentence(piece, gold_tokens):
        return piece
    described = _DESCRIPTION.match(piece)
    if described and _in_sentence(described.group(1), gold_tokens):
        return described.group(1)
    return None


def _json_strings(value: Any, spec: DatasetSpec) -> list[str] | None:
    """The entity strings of a JSON answer, or ``None`` when it is not one."""
    if isinstance(value, dict):
        keys = {norm_key(k): v for k, v in value.items()}
        own = [v for k, v in keys.items() if _typed_as(k.replace("_", " "), spec) == "own"]
        lists = own or [keys[k] for k in _LIST_KEYS if k in keys]
        answer = answer_field(value)
        if not lists and isinstance(answer, list):
            lists = [answer]
        if not lists or not all(isinstance(x, list) for x in lists):
            return None
        value = [x for lst in lists for x in lst]
    if not isinstance(value, list):
        return None
    strings = []
    for x in value:
        if isinstance(x, str):
            strings.append(x)
        elif isinstance(x, dict):
            keys = {norm_key(k): v for k, v in x.items()}
            string = next((keys[k] for k in _STRING_KEYS if isinstance(keys.get(k), str)), None)
            kind = next((keys[k] for k in _TYPE_KEYS if isinstance(keys.get(k), str)), None)
            if string is None:
                return None
            if kind is None or _typed_as(kind, spec) == "own":
                strings.append(string)
        else:
            return None
    return strings


def _listed(text: str, gold_tokens: list[str], spec: DatasetSpec) -> tuple[list[str], bool]:
    """The entity strings of a list answer and whether the output states there is none.

    Bullet items (those found in the sentence), heading lines of this dataset's type
    ("Chemicals: a, b", "Diseases: none"; another type's heading is skipped), and a one-line
    answer that is a comma-separated list of items all found in the sentence."""
    strings: list[str] = []
    says_none = False
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for line in lines:
        heading = _HEADING.match(line)
        if not heading:
            continue
        typed = _typed_as(_HEADING_TAIL.sub("", heading.group(1)), spec)
        rest = heading.group(2).strip()
        if typed != "own" or not rest:
            continue
        if _NONE_LINE.match(rest):
            says_none = True
            continue
        items = [_item(p, gold_tokens, spec) for p in re.split(r"[,;]", rest)]
        strings += [i for i in items if i and not isinstance(i, _OtherType)]
    bullets = [_item(b, gold_tokens, spec) for b in _BULLET.findall(text)]
    strings += [b for b in bullets if b and not isinstance(b, _OtherType)]
    if not strings and len(lines) == 1 and not says_none:
        items = [_item(p, gold_tokens, spec) for p in re.split(r"[,;]", lines[0])]
        if (
            items
            and all(i is not None for i in items)
            and not _fragment(lines[0], items, gold_tokens)
        ):
            strings = [i for i in items if i and not isinstance(i, _OtherType)]
    return strings, says_none


def _fragment(line: str, items: list[str | None], gold_tokens: list[str]) -> bool:
    """Whether a line is a piece of the sentence copied out rather than a list of its entities:
    its commas are the sentence's own ("Carriers had anaemia, neuropathy" of "Carriers had
    anaemia, neuropathy, and ataxia": an echo cut short), or its one item spans half the
    sentence."""
    if len(items) == 1:
        return 2 * len(tokenize(items[0] or "")) >= len(gold_tokens)
    return _in_sentence(clean(line).rstrip(" ."), gold_tokens)


def _says_none(text: str, spec: DatasetSpec) -> bool:
    """Whether the output states that the sentence holds no entity of this type."""
    types = _alternation(frozenset({*type_words(spec), "entit", "entity", "entities", "mention"}))
    statement = re.compile(
        rf"\b(?:no|none|zero)\b.{{0,20}}(?:\b(?:{types})|entit)", re.IGNORECASE | re.DOTALL
    )
    return bool(statement.search(text)) or any(
        _NONE_LINE.match(line.strip()) for line in clean(text).split("\n") if line.strip()
    )


def _echo(out_tokens: list[str], gold_tokens: list[str]) -> bool:
    """Whether the output is the sentence itself (words, punctuation aside)."""
    words = [t.lower() for t in out_tokens if re.match(r"\w", t)]
    return bool(words) and words == [w for w, _ in _sub_tokens(gold_tokens) if re.match(r"\w", w)]


def _tag_strings(gold_tokens: list[str], strings: list[str]) -> list[str]:
    """IOB2 tags marking each string wherever it occurs in the sentence."""
    tags = ["O"] * len(gold_tokens)
    sub = _sub_tokens(gold_tokens)
    words = [s for s, _ in sub]
    for string in strings:
        target = [t.lower() for t in tokenize(string.strip().strip("\"'"))]
        if not target:
            continue
        for i in range(len(words) - len(target) + 1):
            if words[i : i + len(target)] == target:
                _mark(tags, sub[i][1], sub[i + len(target) - 1][1])
    return tags


def parse(text: str, spec: DatasetSpec, rec: Record) -> tuple[list[str], str, str | None]:
    """IOB2 tags over the gold tokens, the parse status and the rule that decided.

    The output is cut where an invented next example starts; the text after the last answer
    marker is read when it holds tags (``marker``). Then, in order: tagged spans of the
    sentence (``tagged``), a JSON answer (``json``: entity strings or objects, an empty list is
    no entity), a list of entity strings (``list``: bullets, a heading line, a comma-separated
    line; "Diseases: none" is ``no_entity``), the sentence echoed without tags (``echo``: no
    entity) or a statement that there is none (``no_entity``). The answer after a marker is
    read before the whole output. Not ok ("no_answer", prediction: no entity) otherwise.
    """
    gold_tokens = rec["tokens"]
    tags = ["O"] * len(gold_tokens)
    text, _ = cut_follow_up(text or "", headers(spec))
    if not text.strip():
        return tags, EMPTY, None
    opening_tag = _tag_patterns(spec)[0]
    segment = answer_segment(text)
    marked = bool(segment and opening_tag.search(segment))
    if marked:
        text = segment or ""
    if not opening_tag.search(text):
        for scope in dict.fromkeys(s for s in (segment, paragraphs(text)[0], text) if s):
            value = json_value(scope)
            strings = None if value is None else _json_strings(value, spec)
            if strings is not None and (not strings or _tag_strings(gold_tokens, strings)):
                return _tag_strings(gold_tokens, strings), OK, "json"
        for scope in dict.fromkeys(s for s in (segment, text) if s):
            strings, says_none = _listed(scope, gold_tokens, spec)
            if strings and not _echo(tokenize(scope), gold_tokens):
                return _tag_strings(gold_tokens, strings), OK, "list"
            if says_none:
                return tags, OK, "no_entity"
    out_tokens, owner = _tagged_tokens(text, spec)
    sub = _sub_tokens(gold_tokens)
    matcher = difflib.SequenceMatcher(
        a=[s for s, _ in sub], b=[t.lower() for t in out_tokens], autojunk=False
    )
    gold_of_out: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            gold_of_out[block.b + k] = sub[block.a + k][1]
    # An entity counts only when every one of its tokens is found in the sentence: a tagged
    # phrase that is not in it ("Muscular weakness" for "muscular dystrophy") is not read as
    # the part of it that happens to match.
    entities: dict[int, list[int | None]] = {}
    for oi, ent in enumerate(owner):
        if ent is not None:
            entities.setdefault(ent, []).append(gold_of_out.get(oi))
    entities = {e: g for e, g in entities.items() if None not in g}
    for gidx in entities.values():
        _mark(tags, min(gidx), max(gidx))  # type: ignore[type-var]
    if entities:
        return tags, OK, "marker" if marked else "tagged"
    if len(set(gold_of_out.values())) / max(1, len(gold_tokens)) >= 0.5:
        return tags, OK, "echo"
    if _says_none(text, spec):
        return tags, OK, "no_entity"
    return tags, NO_ANSWER, None


def metrics(gold: list[Any], pred: list[Any]) -> dict[str, float]:
    return ner_scores(gold, pred)
