"""CAP 1.2 XML into the internal model: hardened parse, namespace check, schema, then model.

Refusals, each a :class:`~warnpub.problems.Problem`:

* 400 ``malformed`` — not well-formed XML, bytes not in the declared encoding, empty body;
* 400 ``xml-forbidden`` — a DTD or entity declaration (entity bombs, XXE);
* 422 ``cap-version`` — CAP 1.1, 1.0 or any document element other than a CAP 1.2 <alert>;
* 422 ``cap-too-large`` — more than :data:`MAX_ELEMENTS` elements (checked before the schema);
* 422 ``cap-schema`` — the official CAP 1.2 schema refuses it, one error per violation;
* 422 ``cap-invalid`` — schema-valid, but a value the model cannot hold (say, a polygon point
  that is not ``lat,lon``).

An enveloped XML-DSig <Signature> is allowed by the schema; it is not copied into the model,
only noted in ``Alert.has_signature`` (verification is a separate step that needs the bytes).
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import ValidationError

from warnpub.cap.elements import ALERT, CAP10_NS, CAP11_NS, CAP12_NS, DSIG_NS, Group
from warnpub.cap.field_errors import field_errors
from warnpub.cap.model import Alert
from warnpub.cap.safe_xml import parse_untrusted_xml
from warnpub.cap.schema import schema_errors
from warnpub.problems import FieldError, invalid

_OLD_VERSIONS = {CAP11_NS: "CAP 1.1", CAP10_NS: "CAP 1.0"}
MAX_ELEMENTS = 10_000  # elements, comments and processing instructions of one document


def parse_cap_xml(data: bytes) -> Alert:
    """Parse and check one CAP 1.2 document; raise :class:`Problem` when it is refused."""
    root = parse_untrusted_xml(data)
    _require_cap12_alert(root)
    _require_reasonable_size(root)
    errors = schema_errors(root)
    if errors:
        raise invalid(
            f"the document does not match the CAP 1.2 schema ({len(errors)} problem(s))",
            errors,
            kind="cap-schema",
        )
    fields = _read_group(root, ALERT)
    try:
        alert = Alert.model_validate(fields)
    except ValidationError as exc:
        raise invalid(
            "the CAP document has values warnpub cannot read",
            field_errors(exc, xml=True),
            kind="cap-invalid",
        ) from None
    alert.has_signature = any(
        child.tag == f"{{{DSIG_NS}}}Signature" for child in root.iterchildren(etree.Element)
    )
    return alert


def _require_reasonable_size(root: etree._Element) -> None:
    """Refuse a document with more than MAX_ELEMENTS elements before the schema sees it: libxml2
    takes time in the square of the number of siblings to report their errors, and a 1 MiB body
    holds 150 000 empty <info/>. Real alerts have tens to a few hundred elements."""
    for count, _ in enumerate(root.iter(), start=1):
        if count > MAX_ELEMENTS:
            message = (
                f"the document has more than {MAX_ELEMENTS} elements; a CAP alert needs a few "
                "hundred at most: send several alerts, or fewer geocodes per area"
            )
            raise invalid(message, [FieldError("alert", message)], kind="cap-too-large")


def _require_cap12_alert(root: etree._Element) -> None:
    name = etree.QName(root)
    if name.namespace == CAP12_NS:
        return  # any other element name is reported by the schema check
    if name.namespace in _OLD_VERSIONS:
        version = _OLD_VERSIONS[name.namespace]
        message = f"{version} ({name.namespace}) is not accepted; send CAP 1.2 ({CAP12_NS})"
    elif name.namespace is None:
        message = (
            f"<{name.localname}> has no namespace; a CAP 1.2 document starts with "
            f'<alert xmlns="{CAP12_NS}">'
        )
    else:
        message = (
            f"the document element is <{name.localname}> in namespace {name.namespace}; "
            f"send a CAP 1.2 <alert> in namespace {CAP12_NS}"
        )
    raise invalid(message, [FieldError(name.localname, message)], kind="cap-version")


def _text(node: etree._Element, verbatim: bool) -> str:
    text = str(node.xpath("string()"))  # text and CDATA, without comments or PIs
    return text if verbatim else text.strip()


def _read_group(node: etree._Element, group: Group) -> dict[str, Any]:
    """Collect the CAP children of ``node`` into model fields (the schema has vouched for them)."""
    fields: dict[str, Any] = {}
    for child in node.iterchildren(f"{{{CAP12_NS}}}*"):
        element = group.by_tag(etree.QName(child).localname)
        if element is None:
            continue
        if element.group is not None:
            value: Any = _read_group(child, element.group)
        else:
            value = _text(child, element.verbatim)
            if not element.repeats and not value.strip():
                required = group.model.model_fields[element.field].is_required()
                if not required:
                    continue  # an empty optional element such as <note/> carries nothing
        if element.repeats:
            fields.setdefault(element.field, []).append(value)
        else:
            fields[element.field] = value
    return fields
