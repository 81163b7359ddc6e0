"""The internal model back to CAP 1.2 XML, elements in schema order.

Any :class:`Alert` the model accepts serialises to a document the CAP 1.2 schema accepts, and
parsing that document gives back an equal model (``has_signature`` aside: a signature cannot
be carried over, so the output is unsigned). UTC is written ``-00:00`` as CAP 1.2 asks.
"""

from __future__ import annotations

from datetime import datetime

from lxml import etree
from pydantic import BaseModel

from warnpub.cap.elements import ALERT, CAP12_NS, Group
from warnpub.cap.model import Alert, Circle, cap_datetime, decimal_text, polygon_text


def alert_to_cap_xml(alert: Alert) -> bytes:
    """Serialise an alert as a UTF-8 CAP 1.2 document."""
    root = etree.Element(f"{{{CAP12_NS}}}alert", nsmap={None: CAP12_NS})
    _write_group(root, alert, ALERT)
    document: bytes = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document


def _write_group(parent: etree._Element, model: BaseModel, group: Group) -> None:
    for element in group.elements:
        if isinstance(model, Alert) and element.field == "references":
            text = model.references_text()  # one element holding the space-separated list
            values: list[object] = [text] if text else []
        else:
            value = getattr(model, element.field)
            values = value if element.repeats else [value]
        for item in values:
            if item is None:
                continue
            child = etree.SubElement(parent, f"{{{CAP12_NS}}}{element.tag}")
            if element.group is not None:
                assert isinstance(item, BaseModel)
                _write_group(child, item, element.group)
            else:
                child.text = _text(item)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return cap_datetime(value)
    if isinstance(value, Circle):
        return value.as_cap()
    if isinstance(value, bool):
        raise TypeError("CAP has no boolean elements")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return decimal_text(value)
    if isinstance(value, list):
        return polygon_text(value)
    raise TypeError(f"cannot write {type(value).__name__} as CAP text")
