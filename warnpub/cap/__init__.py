"""CAP 1.2: the internal model, hardened XML and JSON parsing, offline rules, XML writing.

``parse_cap_xml`` / ``parse_alert_json`` turn a body into an :class:`Alert` or raise a
:class:`~warnpub.problems.Problem`; ``offline_errors`` lists the CAP rules it breaks;
``alert_to_cap_xml`` writes it back; ``validate_file`` / ``validate_bytes`` do all of it for the
``warnpub cap validate`` command.
"""

from warnpub.cap.elements import CAP11_NS, CAP12_NS, xml_path
from warnpub.cap.json_parse import parse_alert_json
from warnpub.cap.model import (
    CAP_DATETIME_EXAMPLE,
    Alert,
    Area,
    Circle,
    Info,
    Level,
    NamedValue,
    Reference,
    Resource,
    cap_datetime,
    level_for_severity,
    parse_cap_datetime,
)
from warnpub.cap.rules import offline_errors
from warnpub.cap.schema import cap12_schema
from warnpub.cap.validate import FileReport, validate_bytes, validate_file
from warnpub.cap.xml_parse import parse_cap_xml
from warnpub.cap.xml_write import alert_to_cap_xml

__all__ = [
    "CAP11_NS",
    "CAP12_NS",
    "CAP_DATETIME_EXAMPLE",
    "Alert",
    "Area",
    "Circle",
    "FileReport",
    "Info",
    "Level",
    "NamedValue",
    "Reference",
    "Resource",
    "alert_to_cap_xml",
    "cap12_schema",
    "cap_datetime",
    "level_for_severity",
    "offline_errors",
    "parse_alert_json",
    "parse_cap_datetime",
    "parse_cap_xml",
    "validate_bytes",
    "validate_file",
    "xml_path",
]
