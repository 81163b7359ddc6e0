"""Validation against the official CAP 1.2 XML schema, with errors in plain words.

The schema (``cap12.xsd``, see SCHEMA_SOURCE.md) ships inside the package and is loaded once,
on first use. Each libxml2 schema error becomes one :class:`FieldError` whose field is the CAP
element path (``alert/info[1]/area[2]``) and whose message says what to fix and on which line.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from importlib.resources import files

from lxml import etree

from warnpub.cap.elements import CAP12_NS, DATETIME_TAGS, DSIG_NS, REPEATING_TAGS
from warnpub.cap.model import CAP_DATETIME_EXAMPLE
from warnpub.cap.safe_xml import hardened_parser
from warnpub.problems import FieldError

MAX_ERRORS = 100  # a reply lists at most this many; the rest are counted
_LOCK = threading.Lock()  # an XMLSchema keeps its error log on itself: one validation at a time


@cache
def cap12_schema() -> etree.XMLSchema:
    """The CAP 1.2 XMLSchema, parsed once from the copy shipped in this package."""
    xsd = files("warnpub.cap").joinpath("cap12.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(xsd, parser=hardened_parser()))


def schema_errors(root: etree._Element) -> list[FieldError]:
    """Validate a parsed document: one error per schema violation, empty when valid.

    At most ``MAX_ERRORS`` are listed, then one more entry counts the rest.
    """
    schema = cap12_schema()
    with _LOCK:
        if schema.validate(root):
            return []
        entries = list(schema.error_log)
    paths = _ErrorPaths(root)
    # In order, without repeats, in linear time: a hostile document can carry tens of thousands
    # of errors (one per attribute, one per empty sibling).
    unique: dict[FieldError, None] = {}
    for entry in entries:
        unique.setdefault(
            FieldError(
                paths.get(entry.path or ""), f"{plain_message(entry.message)} (line {entry.line})"
            )
        )
    errors = list(unique)
    if len(errors) > MAX_ERRORS:
        hidden = len(errors) - MAX_ERRORS
        errors = [*errors[:MAX_ERRORS], FieldError("alert", f"… and {hidden} more schema errors")]
    return errors


_STEP = re.compile(r"(?P<name>\*|[^/\[\]]+)(?:\[(?P<index>[0-9]+)\])?")


class _ErrorPaths:
    """libxml2's error paths (``/*/*[12]/*[3]``, or ``name[2]`` steps for elements in no
    namespace) as CAP element paths (``alert/info[2]/area[1]``).

    Each parent's children are listed once and each path worked out once, so the cost is linear
    in the size of the document however many errors point into it (``tree.getpath`` and
    :func:`element_path` both scan the siblings of every node they are asked about).
    """

    def __init__(self, root: etree._Element) -> None:
        self._root = root
        self._found: dict[str, tuple[etree._Element, str] | None] = {}
        self._children: dict[tuple[str, str], list[tuple[etree._Element, str]]] = {}

    def get(self, xpath: str) -> str:
        found = self._resolve(xpath)
        return found[1] if found is not None else "alert"

    def _resolve(self, xpath: str) -> tuple[etree._Element, str] | None:
        if xpath in self._found:
            return self._found[xpath]
        result: tuple[etree._Element, str] | None = None
        parent_path, _, step = xpath.rpartition("/")
        match = _STEP.fullmatch(step)
        if match is not None:
            index = int(match["index"] or 1) - 1
            if parent_path == "":
                if index == 0 and self._matches(self._root, match["name"]):
                    result = (self._root, etree.QName(self._root).localname)
            elif (parent := self._resolve(parent_path)) is not None:
                kids = self._named_children(parent_path, parent, match["name"])
                result = kids[index] if 0 <= index < len(kids) else None
        self._found[xpath] = result
        return result

    @staticmethod
    def _matches(node: etree._Element, name: str) -> bool:
        if name == "*":
            return True
        qname = etree.QName(node)
        local = name.rpartition(":")[2]
        return qname.localname == local and (qname.namespace is None) == (":" not in name)

    def _named_children(
        self, key: str, parent: tuple[etree._Element, str], name: str
    ) -> list[tuple[etree._Element, str]]:
        if (key, name) not in self._children:
            node, path = parent
            seen: dict[str, int] = {}
            kids = []
            for child in node.iterchildren(etree.Element):
                local = etree.QName(child).localname
                seen[child.tag] = seen.get(child.tag, 0) + 1
                step = f"{local}[{seen[child.tag]}]" if local in REPEATING_TAGS else local
                if self._matches(child, name):
                    kids.append((child, f"{path}/{step}"))
            self._children[(key, name)] = kids
        return self._children[(key, name)]


def element_path(node: etree._Element) -> str:
    """``alert/info[1]/area[2]/polygon[1]``: local names, 1-based positions for repeating ones."""
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        name = etree.QName(current).localname
        parent = current.getparent()
        if parent is not None and name in REPEATING_TAGS:
            same = [sibling for sibling in parent if sibling.tag == current.tag]
            name += f"[{same.index(current) + 1}]"
        steps.append(name)
        current = parent
    return "/".join(reversed(steps))


# --- libxml2 messages into plain words --------------------------------------------------------

_SUBJECT = re.compile(r"^Element '(?P<element>[^']*)'(?:, attribute '(?P<attribute>[^']*)')?: ")
_QNAME = re.compile(r"\{(?P<ns>[^}]*)\}(?P<name>[^\s,)']+)")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( (?P<names>.*?) \)")
_ENUM = re.compile(r"The value '(?P<value>.*)' is not an element of the set \{(?P<set>.*)\}")
_ATOMIC = re.compile(
    r"'(?P<value>.*)' is not a valid value of the (?:local )?atomic type(?: '(?P<type>[^']*)')?"
)
_PATTERN = re.compile(r"\[facet 'pattern'\] The value '(?P<value>.*)' is not accepted")

_TYPE_WORDS = {
    "xs:integer": "a whole number",
    "xs:decimal": "a decimal number such as 120.5 (no exponent)",
    "xs:language": "a language tag such as zh-CN or en-US",
    "xs:anyURI": "a URI",
    "xs:dateTime": f"a CAP date-time such as {CAP_DATETIME_EXAMPLE}",
}


def _name(qname: str) -> str:
    match = _QNAME.fullmatch(qname.strip())
    if match is None:
        return f"<{qname.strip()}>"
    if match["ns"] == CAP12_NS:
        return f"<{match['name']}>"
    if match["ns"] == DSIG_NS:
        return "an XML-DSig <Signature>"
    return f"<{match['name']}> (namespace {match['ns']})"


def _alternatives(names: str) -> str:
    items = [_name(name) for name in names.split(",")]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _datetime_words(value: str) -> str:
    return (
        f"{value!r} is not a CAP date-time; write it like {CAP_DATETIME_EXAMPLE} "
        "(whole seconds and a UTC offset such as +08:00; no fractions, no Z)"
    )


def plain_message(raw: str) -> str:
    """Rewrite one libxml2 schema message so that a person knows what to change."""
    subject = _SUBJECT.match(raw)
    if subject is None:
        return _QNAME.sub(lambda m: m["name"], raw)
    element = _name(subject["element"])
    tag = element.strip("<>")
    rest = raw[subject.end() :]
    expected = _EXPECTED.search(rest)

    if subject["attribute"]:
        return f"{element} may not carry the attribute {subject['attribute']!r}; remove it"
    if "No matching global declaration" in rest:
        return f"the document element must be a CAP 1.2 <alert>, not {element}"
    if rest.startswith("This element is not expected"):
        if expected is None:
            return f"{element} is not allowed here; remove it"
        return (
            f"{element} is not allowed here; at this point the schema expects "
            f"{_alternatives(expected['names'])} (a required element may be missing, or the "
            "elements may be out of the schema's order)"
        )
    if rest.startswith("Missing child element"):
        wanted = _alternatives(expected["names"]) if expected else "more elements"
        return f"{element} is incomplete; it must go on with {wanted}"
    if match := _ENUM.search(rest):
        allowed = ", ".join(item.strip().strip("'") for item in match["set"].split(","))
        return f"{match['value']!r} is not allowed in {element}; use one of {allowed}"
    if match := _PATTERN.search(rest):
        return f"{element}: {_datetime_words(match['value'])}"
    if match := _ATOMIC.search(rest):
        if tag in DATETIME_TAGS or match["type"] == "xs:dateTime":
            return f"{element}: {_datetime_words(match['value'])}"
        wanted = _TYPE_WORDS.get(match["type"] or "", "a valid value")
        return f"{match['value']!r} in {element} is not {wanted}"
    if "Character content other than whitespace" in rest:
        return f"{element} holds only child elements; move the loose text into one of them"
    if "Element content is not allowed" in rest:
        return f"{element} holds text only; remove the elements inside it"
    return f"{element}: {_QNAME.sub(lambda m: m['name'], rest)}"
