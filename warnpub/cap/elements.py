"""CAP 1.2 element names, their order in the schema, and the model field each one fills.

One table drives both directions: :mod:`warnpub.cap.xml_parse` reads elements into model fields
and :mod:`warnpub.cap.xml_write` writes fields back as elements in schema order. The same table
turns a model path such as ``infos.0.areas.1.polygons.0`` into the CAP element path
``alert/info[1]/area[2]/polygon[1]`` for messages about XML input.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from warnpub.cap.model import Alert, Area, Info, NamedValue, Resource

CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP11_NS = "urn:oasis:names:tc:emergency:cap:1.1"
CAP10_NS = "http://www.incident.com/cap/1.0"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


@dataclass(frozen=True, slots=True)
class Element:
    """One CAP element: its name, the model field it fills, and how."""

    tag: str
    field: str
    repeats: bool = False  # maxOccurs="unbounded": the field is a list
    verbatim: bool = False  # free text: surrounding whitespace is kept as sent
    group: Group | None = None  # a complex element: the field holds a nested model


@dataclass(frozen=True, slots=True)
class Group:
    """The child elements of a complex CAP element, in schema order, and the model they fill."""

    model: type[BaseModel]
    elements: tuple[Element, ...]

    def by_tag(self, tag: str) -> Element | None:
        return next((element for element in self.elements if element.tag == tag), None)

    def by_field(self, field: str) -> Element | None:
        return next((element for element in self.elements if element.field == field), None)


def _named_value() -> tuple[Element, ...]:
    return (Element("valueName", "value_name"), Element("value", "value"))


NAMED_VALUE = Group(NamedValue, _named_value())

RESOURCE = Group(
    Resource,
    (
        Element("resourceDesc", "resource_desc", verbatim=True),
        Element("mimeType", "mime_type"),
        Element("size", "size"),
        Element("uri", "uri"),
        Element("derefUri", "deref_uri"),
        Element("digest", "digest"),
    ),
)

AREA = Group(
    Area,
    (
        Element("areaDesc", "area_desc", verbatim=True),
        Element("polygon", "polygons", repeats=True),
        Element("circle", "circles", repeats=True),
        Element("geocode", "geocodes", repeats=True, group=NAMED_VALUE),
        Element("altitude", "altitude"),
        Element("ceiling", "ceiling"),
    ),
)

INFO = Group(
    Info,
    (
        Element("language", "language"),
        Element("category", "categories", repeats=True),
        Element("event", "event", verbatim=True),
        Element("responseType", "response_types", repeats=True),
        Element("urgency", "urgency"),
        Element("severity", "severity"),
        Element("certainty", "certainty"),
        Element("audience", "audience", verbatim=True),
        Element("eventCode", "event_codes", repeats=True, group=NAMED_VALUE),
        Element("effective", "effective"),
        Element("onset", "onset"),
        Element("expires", "expires"),
        Element("senderName", "sender_name", verbatim=True),
        Element("headline", "headline", verbatim=True),
        Element("description", "description", verbatim=True),
        Element("instruction", "instruction", verbatim=True),
        Element("web", "web"),
        Element("contact", "contact", verbatim=True),
        Element("parameter", "parameters", repeats=True, group=NAMED_VALUE),
        Element("resource", "resources", repeats=True, group=RESOURCE),
        Element("area", "areas", repeats=True, group=AREA),
    ),
)

# <references> is one element holding a space-separated list: the model splits the text into
# ``references`` and ``malformed_references``, and the writer joins them back.
ALERT = Group(
    Alert,
    (
        Element("identifier", "identifier"),
        Element("sender", "sender"),
        Element("sent", "sent"),
        Element("status", "status"),
        Element("msgType", "msg_type"),
        Element("source", "source", verbatim=True),
        Element("scope", "scope"),
        Element("restriction", "restriction", verbatim=True),
        Element("addresses", "addresses"),
        Element("code", "codes", repeats=True),
        Element("note", "note", verbatim=True),
        Element("references", "references"),
        Element("incidents", "incidents"),
        Element("info", "infos", repeats=True, group=INFO),
    ),
)

REPEATING_TAGS = frozenset(
    element.tag
    for group in (ALERT, INFO, AREA, RESOURCE, NAMED_VALUE)
    for element in group.elements
    if element.repeats
)
DATETIME_TAGS = frozenset({"sent", "effective", "onset", "expires"})


def xml_path(field_path: str) -> str:
    """Turn a model path (``infos.0.areas.1.polygons.0``) into a CAP element path.

    ``alert/info[1]/area[2]/polygon[1]``. Parts below a leaf element (a circle's ``radius_km``,
    a point index) are dropped; ``malformed_references`` is the <references> element.
    """
    parts = [part for part in field_path.split(".") if part]
    steps = ["alert"]
    group: Group | None = ALERT
    index = 0
    while index < len(parts) and group is not None:
        name = "references" if parts[index] == "malformed_references" else parts[index]
        element = group.by_field(name)
        if element is None:
            break
        step = element.tag
        index += 1
        if element.repeats and index < len(parts) and parts[index].isdigit():
            step += f"[{int(parts[index]) + 1}]"
            index += 1
        elif name == "references" and index < len(parts) and parts[index].isdigit():
            index += 1
        steps.append(step)
        group = element.group
    return "/".join(steps)
