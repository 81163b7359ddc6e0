"""Reading untrusted XML bytes: hostile constructs are refused before anything is resolved.

Two layers. First defusedxml (expat) reads the bytes with DTDs, entity declarations and
external references forbidden, so an entity bomb or an XXE attempt is refused at its
``<!DOCTYPE`` before a single entity is expanded. Only then does lxml parse the same bytes,
itself configured to resolve no entities, load no DTD and touch no network, with libxml2's
size and depth limits left on (``huge_tree=False``). XInclude is never processed.
"""

from __future__ import annotations

import codecs
import re
import threading
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DefusedElementTree
from lxml import etree

from warnpub.problems import Problem, bad_request

FORBIDDEN_MESSAGE = (
    "DTDs and entity declarations are not allowed in CAP; remove the <!DOCTYPE …> and any "
    "<!ENTITY …> and write the text out in full"
)

_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")

_PER_THREAD = threading.local()  # lxml serialises use of one parser; give each thread its own


def hardened_parser() -> etree.XMLParser:
    """This thread's lxml parser: no entities, no DTD, no network, libxml2 limits on."""
    parser: etree.XMLParser | None = getattr(_PER_THREAD, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=False,
        )
        _PER_THREAD.parser = parser
    return parser


def parse_untrusted_xml(data: bytes) -> etree._Element:
    """Parse XML from outside; return the root element or raise a 400 :class:`Problem`."""
    if not data.strip():
        raise bad_request("the body is empty; send a CAP 1.2 <alert> document")
    _refuse_hostile(data)
    try:
        return etree.fromstring(data, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise bad_request(f"the XML is malformed: {exc.msg}") from None


def _refuse_hostile(data: bytes) -> None:
    try:
        _defused_parse(data)
    except DefusedXmlException:
        raise bad_request(FORBIDDEN_MESSAGE, kind="xml-forbidden") from None
    except ParseError as exc:
        raise _malformed(data, exc) from None
    except LookupError:  # expat was asked for a charset Python does not know
        encoding = _declared_encoding(data)
        raise bad_request(f"the XML declares an unknown encoding {encoding!r}; use UTF-8") from None


def _defused_parse(data: bytes) -> None:
    options = {"forbid_dtd": True, "forbid_entities": True, "forbid_external": True}
    try:
        DefusedElementTree.fromstring(data, **options)
    except DefusedXmlException:
        raise
    except ValueError as exc:
        # expat reads UTF-8/16, ASCII and single-byte charsets only. For a multi-byte charset
        # that Chinese systems still send (GB2312, GBK, GB18030), decode it here and check the
        # text instead; lxml then reads the original bytes with its own decoder.
        if "multi-byte" not in str(exc):
            raise
        DefusedElementTree.fromstring(_decode_declared(data), **options)


def _declared_encoding(data: bytes) -> str | None:
    match = _DECLARED_ENCODING.match(data)
    return match.group(1).decode("ascii") if match else None


def _decode_declared(data: bytes) -> str:
    encoding = _declared_encoding(data) or "utf-8"
    try:
        return data.decode(encoding)
    except LookupError:
        raise bad_request(f"the XML declares an unknown encoding {encoding!r}; use UTF-8") from None
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"the bytes are not valid {encoding} (byte {exc.start}); send UTF-8"
        ) from None


def _malformed(data: bytes, exc: ParseError) -> Problem:
    encoding = _declared_encoding(data) or "utf-8"
    if _is_utf8(encoding) and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return bad_request(
                f"the XML is malformed: the bytes are not valid UTF-8 (byte {decode_error.start}); "
                'send UTF-8 or declare the encoding in <?xml … encoding="…"?>'
            )
    line, column = exc.position
    reason = str(exc).split(":", 1)[0]
    return bad_request(f"the XML is malformed: {reason} at line {line}, column {column + 1}")


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False
