"""msgspec's validation messages in the words of people: "Expected `bool`, got `str` - at
`$.enabled`" becomes "enabled must be true or false.", an invalid enum value lists the values
allowed. Pure functions; :func:`waypost.errors.from_validation_error` uses them.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec

# msgspec's names of JSON types, as a sentence says them.
_NOUNS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "uuid": "a UUID",
    "datetime": "a date and time in ISO 8601 with an offset, such as 2026-01-31T09:30:00Z",
    "date": "a date in ISO 8601, such as 2026-01-31",
    "decimal": 'a decimal number in a string, such as "50000.10"',
}
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`\Z")
_BOUND = re.compile(r"^Expected `(?P<want>[^`]+)` (?P<op>>=|<=|>|<) (?P<n>-?[\d.e+]+)\Z")
_LENGTH = re.compile(r"^Expected `(?P<want>[^`]+)` of length (?P<op>>=|<=) (?P<n>\d+)\Z")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<regex>.*)'\Z")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)\Z")
_OUT_OF_RANGE = "Number out of range"
# The patterns of the API's types, in words (msgspec's message may escape their backslashes).
_PATTERN_WORDS = {
    r"\S": "hold more than white space",  # a display name
    r"^[A-Za-z0-9_.\-]+$(?!\n)": "hold only letters, digits, '_', '.' and '-'",  # a code name
}
_INVALID = re.compile(r"^Invalid (?P<what>UUID|RFC3339 encoded (?P<kind>datetime|date|time))\Z")
_BOUND_WORDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}
_ITEMS = {"str": "characters", "array": "items", "object": "entries", "bytes": "bytes"}


def quoted(text: str, limit: int = 100) -> str:
    """``text`` quoted for a message, cut after ``limit`` characters: an answer does not echo
    a megabyte a client sent."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"


def a_or_an(word: str) -> str:
    """``"admin"`` -> ``"an admin"``, ``"tracking"`` -> ``"a tracking"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def noun(names: str) -> str:
    """``"uuid | null"`` -> ``"a UUID or null"``."""
    words = [_NOUNS.get(name.strip(), f"a {name.strip()}") for name in names.split("|")]
    return " or ".join(words)


def subject(field: str | None) -> str:
    return field if field else "The body"


def key_sentence(text: str, field: str | None) -> str:
    """msgspec's ``text`` about a key of the object at ``field`` (None: the body itself)."""
    who = f"A key of {field}" if field else "A key of the body"
    if match := _LENGTH.match(text):
        if match["op"] == ">=" and match["n"] == "1":
            return f"{who} must not be empty."
        return f"{who} holds {_BOUND_WORDS[match['op']]} {match['n']} characters."
    return sentence(text, field).replace(subject(field), who, 1)


def out_of_range(field: str | None) -> str:
    """What to say of a number no reader takes (``1e400``) at ``field``, as :func:`sentence`
    says it of msgspec's refusal."""
    return sentence(_OUT_OF_RANGE, field)


def sentence(text: str, field: str | None, allowed: list[str] | None = None) -> str:
    """msgspec's ``text`` about ``field`` (None: the body itself) as a sentence that says what
    to send instead; ``allowed`` are the values an enum takes, when known."""
    who = subject(field)
    if text == _OUT_OF_RANGE:
        return f"{who} is a number out of range; send a smaller one."
    if match := _EXPECTED.match(text):
        return f"{who} must be {noun(match['want'])}, not {noun(match['got'])}."
    if match := _LENGTH.match(text):
        unit = _ITEMS.get(match["want"], "items")
        if match["op"] == ">=" and match["n"] == "1":
            return f"{who} must not be empty."
        return f"{who} holds {_BOUND_WORDS[match['op']]} {match['n']} {unit}."
    if match := _BOUND.match(text):
        return f"{who} must be {_BOUND_WORDS[match['op']]} {match['n']}."
    if match := _REGEX.match(text):
        words = _PATTERN_WORDS.get(match["regex"].replace("\\\\", "\\"))
        if words is not None:
            return f"{who} must {words}."
        return f"{who} must match the pattern {match['regex']}."
    if match := _ENUM.match(text):
        value = match["value"]
        if len(value) > 102:  # msgspec's repr of the value: cut as quoted() cuts
            value = f"{value[:101]}… ({len(value) - 2} characters)"
        if allowed:
            return f"{who}: {value} is not allowed; use one of {', '.join(allowed)}."
        return f"{who}: {value} is not one of the allowed values."
    if match := _INVALID.match(text):
        kind = "uuid" if match["what"] == "UUID" else match["kind"]
        return f"{who} must be {noun(kind)}."
    # A message of the project's own (a ValueError in a Struct's __post_init__) is already a
    # sentence; anything else from msgspec is at least told with its field.
    text = text.rstrip(".")
    return f"{text}." if field is None or text.startswith(field) else f"{field}: {text}."


_STEP = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]")


def allowed_values(target: Any, path: str | None) -> list[str] | None:
    """The values of the enum or literal at ``path`` ("fields[0].type") of the type
    ``target``, if it is one."""
    if target is None:
        return None
    try:
        info: Any = msgspec.inspect.type_info(target)
    except (TypeError, ValueError):
        return None
    for step in _STEP.finditer("." + path if path else ""):
        info = _step(info, step["name"], step["index"] is not None)
        if info is None:
            return None
    for option in _options(info):
        if isinstance(option, msgspec.inspect.LiteralType):
            return [str(v) for v in option.values]
        if isinstance(option, msgspec.inspect.EnumType):
            return [str(member.value) for member in option.cls]
    return None


def _options(info: Any) -> list[Any]:
    if isinstance(info, msgspec.inspect.Metadata):
        return _options(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return [o for t in info.types for o in _options(t)]
    return [info]


_SEQUENCES = (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.VarTupleType)


def _step(info: Any, name: str | None, index: bool) -> Any:
    for option in _options(info):
        if index and isinstance(
            option,
            msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.VarTupleType,
        ):
            return option.item_type
        if name is not None and isinstance(option, msgspec.inspect.StructType):
            for field in option.fields:
                if field.encode_name == name:
                    return field.type
        if name is not None and isinstance(option, msgspec.inspect.DictType):
            return option.value_type
    return None


_SEGMENT = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]|(?P<any>\[\.\.\.\])")
_MAX_KEY_IN_PATH = 100


def name_keys(target: Any, path: str, document: Any, text: str) -> str:
    """``path`` with each ``[...]`` (msgspec's "a value of this object") made the key whose
    value is at fault: ``texts[...].short_text`` -> ``texts.en.short_text``. ``document`` is
    the body decoded without a type, ``target`` its type and ``text`` msgspec's message; the
    key is the first whose value fails with that message. Unresolved, ``[...]`` stays."""
    walk = path if path.startswith("[") else "." + path
    named: list[str] = []
    node, kind = document, target
    for step in _SEGMENT.finditer(walk):
        if step["any"] is None:
            named.append(step.group())
            key: Any = step["name"] if step["name"] is not None else int(step["index"])
            node = _child(node, key)
            kind = _python_step(kind, step["name"], step["index"] is not None)
            continue
        value_type = _python_step(kind, None, False, dict_value=True)
        found = _failing_key(node, value_type, text) if value_type is not None else None
        if found is None:
            named.append(walk[step.start() :])
            break
        named.append(f".{found}")
        node, kind = node[found], value_type
    return "".join(named).lstrip(".")


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, int):
        return node[key] if isinstance(node, list) and key < len(node) else None
    return node.get(key) if isinstance(node, dict) else None


def _failing_key(node: Any, value_type: Any, text: str) -> str | None:
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError as exc:
            said = str(exc).split(" - at `", 1)[0]
            if said == text:
                if len(key) > _MAX_KEY_IN_PATH or "." in key or "[" in key:
                    return None
                return str(key)
        except (TypeError, ValueError):
            return None
    return None


def _python_step(kind: Any, name: str | None, index: bool, dict_value: bool = False) -> Any:
    """The Python type one step into ``kind``: a Struct's field ``name``, a list's item
    (``index``) or a dict's value; None if ``kind`` has no such step."""
    if kind is None:
        return None
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _python_step(typing.get_args(kind)[0], name, index, dict_value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            found = _python_step(option, name, index, dict_value)
            if found is not None:
                return found
        return None
    if dict_value or (name is not None and origin is dict):
        return typing.get_args(kind)[1] if origin is dict else None
    if index:
        return typing.get_args(kind)[0] if origin in (list, set, tuple) else None
    if name is not None and isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        for field in msgspec.structs.fields(kind):
            if field.encode_name == name:
                return field.type
    return None
