"""Roster files (花名册) as village offices keep them: read, map the columns, check every row.

A roster is a CSV file (UTF-8 with or without BOM, GB18030 as Excel saves it on Chinese
Windows, or UTF-16 "Unicode text") or an XLSX workbook (its first sheet, read as a stream).
Column headers are mapped to fields by ``[audiences.roster_columns]``; values naming needs and
roles by ``need_labels`` and ``role_labels``. Every bad row is reported with its row number
as the spreadsheet shows it (the header is row 1) and a reason that says what to fix.

Nothing here touches the database: :mod:`warnpub.audiences.importer` loads what is stored,
matches rows to people already stored, and writes.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
import unicodedata
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import PurePath
from typing import Any

import phonenumbers

from warnpub.audiences.divisions import significant_prefix, write_out
from warnpub.audiences.needs import BY_NAME, ROLES, Need
from warnpub.config import AudiencesConfig
from warnpub.logs import mask
from warnpub.problems import FieldError, Problem, invalid

Progress = Callable[[int, int], None]

# The fields a roster column can fill, in the order they are documented.
FIELDS = (
    "external_id",
    "name",
    "phone",
    "email",
    "town",
    "village",
    "role",
    "needs",
    "needs_note",
    "relay_contact",
    "language",
    "lat",
    "lon",
    "opt_out",
    "drill_consent",
)
REQUIRED = ("name", "village")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A title line (e.g. "社渚村特殊人群花名册") may stand above the header; look this far down.
HEADER_SEARCH_ROWS = 10
PROGRESS_EVERY = 1000

MAX_NAME, MAX_EXTERNAL_ID, MAX_EMAIL, MAX_NOTE = 100, 64, 254, 500
MAX_QUOTED = 80  # longer cells are shortened where an error message quotes them
NO_NEEDS = frozenset({"无", "-", "—", "none"})
TRUE_WORDS = frozenset({"是", "yes", "y", "1", "true"})
FALSE_WORDS = frozenset({"否", "no", "n", "0", "false"})
_NEED_SEPARATORS = re.compile(r"[、,;/\s]+")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}$")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class RowError:
    """One thing wrong with one row: ``column`` is the header as the file writes it."""

    row: int
    field: str
    column: str
    message: str

    def __post_init__(self) -> None:
        # Cell values are quoted in messages; a phone number in the wrong column stays masked.
        object.__setattr__(self, "message", mask(self.message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "field": self.field,
            "column": self.column,
            "message": self.message,
        }


@dataclass(slots=True)
class ImportReport:
    """What an import found and did. Counts of people cover the rows that are (or would be) written."""

    filename: str
    rows_read: int = 0
    valid: int = 0
    errors: list[RowError] = field(default_factory=list)
    to_create: int = 0
    to_update: int = 0
    unchanged: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False
    skip_invalid: bool = False
    written: bool = False

    @property
    def bad_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors})

    @property
    def blocked(self) -> bool:
        """Errors kept the whole file out (no ``skip_invalid``)."""
        return bool(self.errors) and not self.skip_invalid

    @property
    def outcome(self) -> str:
        if self.blocked:
            return "rejected"
        return "dry_run" if self.dry_run else "imported"

    def as_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "outcome": self.outcome,
            "written": self.written,
            "dry_run": self.dry_run,
            "skip_invalid": self.skip_invalid,
            "rows_read": self.rows_read,
            "valid": self.valid,
            "rows_with_errors": len(self.bad_rows),
            "skipped_rows": self.bad_rows if self.skip_invalid else [],
            "to_create": self.to_create,
            "to_update": self.to_update,
            "unchanged": self.unchanged,
            "ignored_columns": list(self.ignored_columns),
            "errors": [e.as_dict() for e in self.errors],
        }


@dataclass(slots=True)
class PersonRow:
    """One checked roster row, shaped like a stored Person (``area_code`` is the village)."""

    row: int
    name: str
    area_code: str
    external_id: str | None = None
    role: str = "resident"
    phone: str | None = None
    email: str | None = None
    language: str = "zh-CN"
    needs: int = 0
    needs_note: str = ""
    relay_contact: str | None = None  # as written: an external id or a contact's name
    lat: float | None = None
    lon: float | None = None
    opt_out: bool = False
    drill_consent: bool = False
    # Set by resolve_relays: the relay contact is a stored person, or a row of this file
    # that will be created (its id is known only after the insert).
    relay_id: int | None = None
    relay_row: int | None = None


@dataclass(frozen=True, slots=True)
class StoredPerson:
    """A person already stored, as far as matching and relay resolution need to know."""

    id: int
    external_id: str | None
    name: str
    area_code: str
    role: str
    phone: str | None
    email: str | None
    language: str
    needs: int
    needs_note: str
    relay_contact_id: int | None
    lat: float | None
    lon: float | None
    opt_out: bool
    drill_consent: bool


class BadValue(ValueError):
    """A cell value that cannot be used; the message says what to write instead."""


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Table:
    """Non-empty rows of a sheet, each with its row number as the spreadsheet shows it."""

    rows: list[tuple[int, list[str]]]


def display_name(filename: str) -> str:
    return PurePath(filename.replace("\\", "/")).name or "roster"


def read_table(data: bytes, filename: str) -> Table:
    """The rows of a CSV or XLSX file, told apart by content (not by the file name)."""
    name = display_name(filename)
    if data.startswith(_OLE_MAGIC):
        raise invalid(
            f"{name} is an old Excel .xls workbook (or a protected one); open it in Excel or WPS "
            "and save it as .xlsx or as CSV (UTF-8), without a password"
        )
    if data.startswith(_ZIP_MAGIC):
        return Table(_xlsx_rows(data, name))
    return Table(_csv_rows(_decode_text(data, name), name))


def _decode_text(data: bytes, name: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise invalid(
        f"cannot read {name}: it is neither UTF-8 nor GB18030 text nor an XLSX workbook; "
        "save it from Excel or WPS as 'CSV UTF-8' or as .xlsx"
    )


def _delimiter(text: str) -> str:
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(text: str, name: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows: list[tuple[int, list[str]]] = []
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            cells = [c.strip() for c in record]
            if any(cells):
                rows.append((number, cells))
    except csv.Error as exc:
        raise invalid(
            f"cannot read {name} as CSV after row {number}: {exc}; check the quoting there"
        ) from None
    return rows


def _xlsx_rows(data: bytes, name: str) -> list[tuple[int, list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise invalid(
            f"cannot read {name} as an XLSX workbook ({exc}); save it again from Excel or WPS "
            "as .xlsx, or as CSV (UTF-8)"
        ) from None
    try:
        sheet = book.worksheets[0]
        # Some writers record a wrong sheet size; read the rows that are really there.
        sheet.reset_dimensions()  # type: ignore[union-attr]
        rows: list[tuple[int, list[str]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            if any(cells):
                rows.append((number, cells))
        return rows
    finally:
        book.close()


def _cell_text(value: Any) -> str:
    """A cell as the text a person sees: 13812345678 and 320481116200 stay whole numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


# ---------------------------------------------------------------------------- columns


def normalise(text: str) -> str:
    """Header and label text compared loosely: full-width forms, case and spaces ignored."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(folded.split()).strip("*")


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each field is in the sheet, and the header row."""

    header_row: int
    index: dict[str, int]
    headers: dict[str, str]
    ignored: list[str]

    def label(self, name: str) -> str:
        return self.headers.get(name, name)

    def present(self, name: str) -> bool:
        return name in self.index


def column_aliases(config: AudiencesConfig) -> dict[str, list[str]]:
    unknown = [key for key in config.roster_columns if key not in FIELDS]
    if unknown:
        raise Problem(
            400,
            "Bad configuration",
            f"audiences.roster_columns names {', '.join(unknown)}, which are not roster fields; "
            f"use {', '.join(FIELDS)}",
        )
    return {name: list(config.roster_columns.get(name, [])) for name in FIELDS}


def map_columns(table: Table, aliases: dict[str, list[str]], filename: str) -> Columns:
    """The header row (the first with a name column, within the first rows) mapped to fields."""
    wanted = {normalise(alias): name for name, names in aliases.items() for alias in names}
    for number, cells in table.rows[:HEADER_SEARCH_ROWS]:
        if any(wanted.get(normalise(c)) == "name" for c in cells):
            return _columns_of(number, cells, aliases, filename)
    first = table.rows[0][1] if table.rows else []
    return _columns_of(table.rows[0][0] if table.rows else 1, first, aliases, filename)


def _columns_of(
    number: int, cells: list[str], aliases: dict[str, list[str]], filename: str
) -> Columns:
    position = {normalise(c): i for i, c in reversed(list(enumerate(cells))) if c}
    index: dict[str, int] = {}
    for name, names in aliases.items():
        found = [position[normalise(a)] for a in names if normalise(a) in position]
        if found:
            index[name] = found[0]
    missing = [name for name in REQUIRED if name not in index]
    if missing:
        wanted = "; ".join(
            f"{name}: {' or '.join(aliases[name]) or '(none configured)'}" for name in missing
        )
        seen = ", ".join(c for c in cells if c) or "none"
        raise invalid(
            f"{display_name(filename)} has no column for {', '.join(missing)}; "
            f"name the header cells as configured in [audiences.roster_columns] ({wanted}). "
            f"Columns found in row {number}: {seen}",
            [FieldError("columns", f"missing: {', '.join(missing)}")],
        )
    used = set(index.values())
    ignored = [c for i, c in enumerate(cells) if c and i not in used]
    headers = {name: cells[i] for name, i in index.items()}
    return Columns(number, index, headers, ignored)


# ---------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Labels that rosters use for needs and roles, from the configuration."""

    needs: dict[str, Need]
    roles: dict[str, str]
    need_hint: str
    role_hint: str

    @classmethod
    def from_config(cls, config: AudiencesConfig) -> Vocabulary:
        bad_needs = [k for k in config.need_labels if k not in BY_NAME]
        bad_roles = [k for k in config.role_labels if k not in ROLES]
        if bad_needs or bad_roles:
            raise Problem(
                400,
                "Bad configuration",
                "audiences.need_labels and role_labels must use the codes "
                f"{', '.join(BY_NAME)} and {', '.join(ROLES)}; unknown: {', '.join(bad_needs + bad_roles)}",
            )
        needs = {normalise(code): need for code, need in BY_NAME.items()}
        for code, labels in config.need_labels.items():
            needs.update({normalise(label): BY_NAME[code] for label in labels})
        roles = {normalise(code): code for code in ROLES}
        for code, labels in config.role_labels.items():
            roles.update({normalise(label): code for label in labels})
        return cls(
            needs,
            roles,
            _hint(config.need_labels, list(BY_NAME), "need_labels"),
            _hint(config.role_labels, list(ROLES), "role_labels"),
        )

    def need_flags(self, text: str) -> int:
        flags = 0
        for label in _NEED_SEPARATORS.split(unicodedata.normalize("NFKC", text)):
            key = normalise(label)
            if not key or key in NO_NEEDS:
                continue
            if key not in self.needs:
                raise BadValue(f"unknown need label '{label}'; use {self.need_hint}")
            flags |= self.needs[key]
        return flags

    def role(self, text: str) -> str:
        key = normalise(text)
        if key not in self.roles:
            raise BadValue(f"unknown role '{text}'; use {self.role_hint}")
        return self.roles[key]


def _hint(labels: dict[str, list[str]], codes: list[str], key: str) -> str:
    """The first label of each code (e.g. 独居老人、听障、…), and where the others are."""
    first = [labels[c][0] if labels.get(c) else c for c in codes]
    return f"{'、'.join(first)} (other spellings: [audiences.{key}])"


# ---------------------------------------------------------------------------- areas


class AreaIndex:
    """Towns and villages by code and by name, for rows that name their village."""

    def __init__(self, areas: Iterable[tuple[str, str, str | None]]) -> None:
        self.names: dict[str, str] = {}
        self.towns_by_name: dict[str, list[str]] = defaultdict(list)
        self.villages: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.parent: dict[str, str | None] = {}
        for code, name, parent in areas:
            self.names[code] = name
            self.parent[code] = parent
            depth = len(significant_prefix(code))
            if depth == 9:
                self.towns_by_name[normalise(name)].append(code)
            elif depth == 12 and parent:
                self.villages[(parent, normalise(name))].append(code)

    def describe(self, code: str) -> str:
        return f"{self.names.get(code, '?')} ({code})"

    def town(self, text: str) -> str:
        """The 12-digit code of the town or subdistrict ``text`` names (a code or a name)."""
        value = text.strip()
        if value.isdigit():
            code = _written_out(value)
            if code is None or code not in self.names or len(significant_prefix(code)) != 9:
                raise BadValue(
                    f"unknown town {value}: give the 9- or 12-digit code of a town or subdistrict, or its name"
                )
            return code
        codes = self.towns_by_name.get(normalise(value), [])
        if len(codes) == 1:
            return codes[0]
        if not codes:
            raise BadValue(f"unknown town '{value}': check the spelling or give its 9-digit code")
        raise BadValue(
            f"unknown town '{value}': {len(codes)} towns have that name ({', '.join(codes)}); give the code"
        )

    def village(self, text: str, town: str | None) -> str:
        """The code of the village or community ``text`` names: a 12-digit code, or a name in ``town``."""
        value = text.strip()
        if value.isdigit():
            return self._village_by_code(value, town)
        if town is None:
            raise BadValue(
                f"unknown village '{value}': give its 12-digit code, or name its town "
                "(town column, or a default town for the whole file)"
            )
        codes = self.villages.get((town, normalise(value)), [])
        if len(codes) == 1:
            return codes[0]
        if not codes:
            raise BadValue(
                f"unknown village '{value}' in {self.describe(town)}: check the spelling or give the 12-digit code"
            )
        raise BadValue(
            f"unknown village '{value}': {len(codes)} villages in {self.describe(town)} have that name "
            f"({', '.join(codes)}); give the 12-digit code"
        )

    def _village_by_code(self, value: str, town: str | None) -> str:
        code = _written_out(value)
        if code is None or code not in self.names:
            raise BadValue(
                f"unknown village {value}: no village or community has that code; "
                "check it, or write the village name and its town"
            )
        if len(significant_prefix(code)) != 12:
            raise BadValue(
                f"unknown village {value}: that is {self.names[code]}, not a village or community; "
                "give the village's 12-digit code"
            )
        parent = self.parent.get(code)
        if town is not None and parent != town:
            raise BadValue(
                f"unknown village {value}: {self.names[code]} is in "
                f"{self.describe(parent or '')}, not in {self.describe(town)}"
            )
        return code


def _written_out(value: str) -> str | None:
    try:
        return write_out(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------- values


def mask_phone(value: str) -> str:
    """All but the last four characters hidden: 13812345678 → *******5678."""
    value = value.strip()
    return "*" * max(0, len(value) - 4) + value[-4:]


def parse_phone(text: str, region: str) -> str:
    """E.164 (+8613812345678) from what a roster holds: 138 1234 5678, 0519-87654321, +86…"""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        shown = mask_phone(text) if len(text) <= MAX_QUOTED else shortened(mask_phone(text))
        raise BadValue(
            f"invalid phone number {shown}: write an 11-digit mobile number, a landline "
            f"with its area code, or the number with +country code (read as {region} otherwise)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(text: str) -> str:
    value = text.strip()
    if len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise BadValue(f"invalid e-mail address '{value}': write it as name@example.com")
    return value


def parse_bool(text: str) -> bool:
    key = normalise(text)
    if key in TRUE_WORDS:
        return True
    if key in FALSE_WORDS:
        return False
    raise BadValue(f"'{text}' is not yes or no: write 是 or 否 (also yes/no, 1/0, true/false)")


def parse_coordinate(text: str, what: str, limit: float) -> float:
    try:
        value = float(unicodedata.normalize("NFKC", text).strip().rstrip("°"))
    except ValueError:
        raise BadValue(
            f"{what} '{text}' is not a number: give decimal degrees such as 31.43"
        ) from None
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise BadValue(
            f"{what} {text} is out of range: give decimal degrees between -{limit:g} and {limit:g}"
        )
    return value


def parse_language(text: str) -> str:
    value = text.strip()
    if not _LANGUAGE.match(value):
        raise BadValue(f"'{value}' is not a language tag: write one such as zh-CN, en or bo")
    return value


def shortened(value: str) -> str:
    """A cell as an error message quotes it: whole, or its start and its length when long (a
    message stays readable, and masking it stays quick)."""
    if len(value) <= MAX_QUOTED:
        return value
    return f"{value[: MAX_QUOTED // 2]}… ({len(value)} characters)"


def limited(text: str, limit: int, label: str) -> str:
    if len(text) > limit:
        raise BadValue(f"{label} is longer than {limit} characters; shorten it")
    return text


# ---------------------------------------------------------------------------- rows


class RowChecker:
    """Turns the cells of one row into a :class:`PersonRow`, or the reasons it cannot."""

    def __init__(
        self,
        columns: Columns,
        vocabulary: Vocabulary,
        areas: AreaIndex,
        region: str,
        default_town: str | None,
    ) -> None:
        self.columns, self.vocabulary, self.areas = columns, vocabulary, areas
        self.region, self.default_town = region, default_town
        self.parsers: dict[str, Callable[[str], Any]] = {
            "external_id": lambda v: limited(v, MAX_EXTERNAL_ID, columns.label("external_id")),
            "phone": lambda v: parse_phone(v, region),
            "email": parse_email,
            "role": vocabulary.role,
            "needs": vocabulary.need_flags,
            "needs_note": lambda v: limited(v, MAX_NOTE, columns.label("needs_note")),
            "relay_contact": lambda v: v,
            "language": parse_language,
            "lat": lambda v: parse_coordinate(v, "latitude", 90),
            "lon": lambda v: parse_coordinate(v, "longitude", 180),
            "opt_out": parse_bool,
            "drill_consent": parse_bool,
        }

    def cell(self, cells: Sequence[str], name: str) -> str:
        i = self.columns.index.get(name)
        return cells[i] if i is not None and i < len(cells) else ""

    def check(self, number: int, cells: Sequence[str]) -> tuple[PersonRow, list[RowError]]:
        """The row as a person, and its errors; a row with errors comes back only partly filled
        (what could be read), so that other rows can say that they refer to it."""
        errors: list[RowError] = []

        def bad(name: str, message: str) -> None:
            for cell in cells:  # a huge cell is quoted by its start and its length
                if len(cell) > MAX_QUOTED:
                    message = message.replace(cell, shortened(cell))
            errors.append(RowError(number, name, self.columns.label(name), message))

        values: dict[str, Any] = {}
        for name, parse in self.parsers.items():
            text = self.cell(cells, name)
            if not text:
                continue
            try:
                values[name] = parse(text)
            except BadValue as exc:
                bad(name, str(exc))
        name = self._name(cells, bad)
        village = self._village(cells, bad)
        if ("lat" in values) != ("lon" in values) and not errors:
            missing = "lon" if "lat" in values else "lat"
            bad(
                missing,
                f"give both {self.columns.label('lat')} and {self.columns.label('lon')}, or neither",
            )
        if errors or name is None or village is None:
            known = {k: values[k] for k in ("external_id", "role", "relay_contact") if k in values}
            return PersonRow(row=number, name=name or "", area_code=village or "", **known), errors
        return PersonRow(row=number, name=name, area_code=village, **values), []

    def _name(self, cells: Sequence[str], bad: Callable[[str, str], None]) -> str | None:
        name = self.cell(cells, "name")
        if not name:
            bad("name", "name is empty: every person needs a name")
            return None
        if len(name) > MAX_NAME:
            bad("name", f"name is longer than {MAX_NAME} characters; shorten it")
            return None
        return name

    def _village(self, cells: Sequence[str], bad: Callable[[str, str], None]) -> str | None:
        town = self.default_town
        town_text = self.cell(cells, "town")
        if town_text:
            try:
                town = self.areas.town(town_text)
            except BadValue as exc:
                bad("town", str(exc))
                return None
        village = self.cell(cells, "village")
        if not village:
            bad("village", "village is empty: give the village's 12-digit code or its name")
            return None
        try:
            return self.areas.village(village, town)
        except BadValue as exc:
            bad("village", str(exc))
            return None


# ---------------------------------------------------------------------------- whole file


@dataclass(slots=True)
class ParsedRoster:
    """A roster read and checked row by row; ``people`` are the rows without errors so far,
    ``rejected`` the rows with errors (partly filled)."""

    filename: str
    columns: Columns
    rows_read: int
    people: list[PersonRow]
    rejected: list[PersonRow]
    errors: list[RowError]


def parse_roster(
    data: bytes,
    filename: str,
    config: AudiencesConfig,
    areas: AreaIndex,
    default_town: str | None = None,
    progress: Progress | None = None,
) -> ParsedRoster:
    """Read ``data`` and check every row. A file that cannot be read at all raises a 422 Problem."""
    table = read_table(data, filename)
    if not table.rows:
        raise invalid(f"{display_name(filename)} is empty: it has no header and no rows")
    columns = map_columns(table, column_aliases(config), filename)
    town = resolve_default_town(areas, default_town)
    checker = RowChecker(columns, Vocabulary.from_config(config), areas, config.phone_region, town)
    body = [(n, cells) for n, cells in table.rows if n > columns.header_row]
    people: list[PersonRow] = []
    rejected: list[PersonRow] = []
    errors: list[RowError] = []
    for done, (number, cells) in enumerate(body, start=1):
        person, problems = checker.check(number, cells)
        (rejected if problems else people).append(person)
        errors.extend(problems)
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, 2 * len(body))
    duplicates = find_duplicates(people, columns, areas)
    errors.extend(duplicates)
    drop = {e.row for e in duplicates}
    rejected += [p for p in people if p.row in drop]
    people = [p for p in people if p.row not in drop]
    if progress is not None:
        progress(len(body), 2 * len(body))
    return ParsedRoster(display_name(filename), columns, len(body), people, rejected, errors)


def resolve_default_town(areas: AreaIndex, default_town: str | None) -> str | None:
    if not default_town:
        return None
    try:
        return areas.town(default_town)
    except BadValue as exc:
        raise invalid(
            f"the default town is not usable: {exc}", [FieldError("town", str(exc))]
        ) from None


def find_duplicates(people: list[PersonRow], columns: Columns, areas: AreaIndex) -> list[RowError]:
    """Later rows that repeat an external id, or a name and phone in one village.

    Rows without an external id are told apart on re-import by name + phone + village, so two
    such rows that agree on all three (also when both have no phone) are duplicates too.
    """
    by_id: dict[str, int] = {}
    by_identity: dict[tuple[str, str, str | None], PersonRow] = {}
    errors: list[RowError] = []
    for p in people:
        if p.external_id is not None and p.external_id in by_id:
            first = by_id[p.external_id]
            errors.append(
                RowError(
                    p.row,
                    "external_id",
                    columns.label("external_id"),
                    f"duplicate of row {first}: the same {columns.label('external_id')} '{p.external_id}'",
                )
            )
            continue
        key = (p.area_code, p.name, p.phone)
        earlier = by_identity.get(key)
        if earlier is not None and _same_person(earlier, p):
            what = "name and phone" if p.phone else "name, no phone and no external id"
            errors.append(
                RowError(
                    p.row,
                    "name",
                    columns.label("name"),
                    f"duplicate of row {earlier.row}: the same {what} in {areas.describe(p.area_code)}; "
                    f"remove one, or give each its own {columns.label('external_id')}",
                )
            )
            continue
        if p.external_id is not None:
            by_id[p.external_id] = p.row
        by_identity.setdefault(key, p)
    return errors


def _same_person(a: PersonRow, b: PersonRow) -> bool:
    if a.phone is not None:
        return True
    return a.external_id is None or b.external_id is None


# ---------------------------------------------------------------------------- relay contacts


CONTACT_ROLE = "village_contact"


@dataclass(frozen=True, slots=True)
class _Candidate:
    row: PersonRow | None
    stored: StoredPerson | None

    @property
    def role(self) -> str:
        return self.row.role if self.row is not None else self.stored.role  # type: ignore[union-attr]

    def where(self) -> str:
        return f"row {self.row.row}" if self.row is not None else "already stored"


class _ContactIndex:
    def __init__(
        self,
        alive: Iterable[PersonRow],
        rejected: Iterable[PersonRow],
        stored: Iterable[StoredPerson],
        matched: dict[int, StoredPerson],
    ) -> None:
        self.by_id: dict[str, _Candidate] = {}
        self.by_name: dict[tuple[str, str], list[_Candidate]] = defaultdict(list)
        self.rejected_ids: dict[str, int] = {}
        self.rejected_names: dict[tuple[str, str], int] = {}
        represented = {s.id for s in matched.values()}
        for s in stored:
            if s.id in represented:
                continue
            if s.external_id:
                self.by_id[s.external_id] = _Candidate(None, s)
            if s.role == CONTACT_ROLE:
                self.by_name[(s.area_code, s.name)].append(_Candidate(None, s))
        for p in alive:
            ext = p.external_id or (matched[p.row].external_id if p.row in matched else None)
            if ext:
                self.by_id[ext] = _Candidate(p, None)
            if p.role == CONTACT_ROLE:
                self.by_name[(p.area_code, p.name)].append(_Candidate(p, None))
        for p in rejected:
            if p.external_id:
                self.rejected_ids.setdefault(p.external_id, p.row)
            if p.name:
                self.rejected_names.setdefault((p.area_code, p.name), p.row)

    def find(self, p: PersonRow) -> _Candidate:
        value = p.relay_contact or ""
        if value in self.by_id:
            return self.by_id[value]
        candidates = self.by_name.get((p.area_code, value), [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            places = ", ".join(c.where() for c in candidates)
            raise BadValue(
                f"relay contact '{value}' is ambiguous: {len(candidates)} village contacts in this "
                f"village have that name ({places}); give the contact's external id instead"
            )
        row = self.rejected_ids.get(value) or self.rejected_names.get((p.area_code, value))
        if row is not None:
            raise BadValue(
                f"relay contact '{value}' is on row {row}, which has errors; fix that row first"
            )
        raise BadValue(
            f"unknown relay contact '{value}': no person has that external id, and no village contact "
            "of that name is in this village (in this file or already stored); check the spelling"
        )


def resolve_relays(
    people: list[PersonRow],
    rejected: list[PersonRow],
    stored: Iterable[StoredPerson],
    matched: dict[int, StoredPerson],
    columns: Columns,
) -> list[RowError]:
    """Point each row's relay contact at a stored person or at a row of this file.

    A row whose contact cannot be found, or is not a village contact, gets an error; so does a
    row whose contact is on a row with errors. Resolution repeats until no new row drops out.
    Rows already rejected are checked too, so that a row's every error is reported at once.
    """
    stored = list(stored)
    alive = {p.row: p for p in people}
    dropped = list(rejected)
    errors: list[RowError] = []
    label = columns.label("relay_contact")
    while True:
        index = _ContactIndex(alive.values(), dropped, stored, matched)
        new = _relay_errors(alive.values(), index, matched, label)
        if not new:
            break
        errors.extend(new)
        for e in new:
            dropped.append(alive.pop(e.row))
    return errors + _relay_errors((p for p in rejected if p.area_code), index, matched, label)


def _relay_errors(
    rows: Iterable[PersonRow], index: _ContactIndex, matched: dict[int, StoredPerson], label: str
) -> list[RowError]:
    errors: list[RowError] = []
    for p in rows:
        if p.relay_contact:
            message = _point_relay(p, index, matched)
            if message:
                errors.append(RowError(p.row, "relay_contact", label, message))
    return errors


def _point_relay(p: PersonRow, index: _ContactIndex, matched: dict[int, StoredPerson]) -> str:
    try:
        target = index.find(p)
    except BadValue as exc:
        return str(exc)
    if target.role != CONTACT_ROLE:
        return (
            f"relay contact '{p.relay_contact}' ({target.where()}) is a {target.role}, not a "
            "village contact; name a village contact, or make that person one"
        )
    if target.row is p or (target.stored is not None and matched.get(p.row) is target.stored):
        return (
            "a person cannot be their own relay contact; leave the cell empty or name someone else"
        )
    if target.row is not None and target.row.row in matched:
        p.relay_id, p.relay_row = matched[target.row.row].id, None
    elif target.row is not None:
        p.relay_id, p.relay_row = None, target.row.row
    else:
        p.relay_id, p.relay_row = target.stored.id, None  # type: ignore[union-attr]
    return ""
