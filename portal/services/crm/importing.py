"""DATA-1: customers from a CSV file — another field-service tool's export, a spreadsheet, or our own export.

Three steps, each its own request: `upload` reads and checks the file (encoding and delimiter detected, header
columns recognised) and keeps its rows in a `CustomerImport`; `plan` (the preview) says, for the current column mapping,
which rows create a customer, which update or skip an existing one (matched on email, else on the normalised
phone) and which are refused and why; `confirm` runs the import. Like every service it flushes and the caller
commits once, so the whole import is one transaction: a crash or a database error leaves nothing behind.

Speed (10,000 rows upload → confirmed well under 30 s, `bench/customer_import.py`): new customers and their
emails, phones, addresses, tags, notes and feed entries are written with plain table INSERTs (`_bulk_insert`:
executemany, or on PostgreSQL one INSERT … SELECT FROM unnest() per table); existing customers are compared from
plain column queries, and only those updated are loaded and changed through the ORM.

A row that looks like it carries a card number (the card guard's test, on every cell) is refused and its cells
are never stored: the stored row is emptied at upload.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import selectinload

from portal import card_guard, clock
from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Address,
    Customer,
    CustomerEmail,
    CustomerNote,
    CustomerPhone,
    CustomerStatus,
    CustomFieldDefinition,
    CustomFieldValue,
    StaffUser,
    Tag,
    customer_tags,
)
from portal.models.customers import CATEGORIES, CustomerImport, new_auth_secret
from portal.services.crm import custom_fields
from portal.services.errors import ServiceError, ValidationError, found

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
NOTE_SEPARATOR = "\n---\n"  # our export joins a customer's notes with it; the import splits them again
CHUNK = 500  # ids per IN (...) when looking up what already exists


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    max_length: int


# What a column can be imported as, in the order the mapping lists them. Lengths are the columns' own.
TARGETS = [
    Target("first_name", "First name", 80),
    Target("last_name", "Last name", 80),
    Target("full_name", "Full name (split into first and last)", 161),
    Target("company_name", "Company", 160),
    Target("kind", "Kind (individual / business)", 20),
    Target("email", "Email", 254),
    Target("phone", "Phone", 25),
    Target("street", "Street address", 200),
    Target("address_line2", "Address line 2", 200),
    Target("city", "City", 100),
    Target("state", "State / region", 100),
    Target("postal_code", "Postal code", 20),
    Target("status", "Status", 20),
    Target("language", "Language", 20),
    Target("category", "Category", 10),
    Target("lead_source", "Lead source", 120),
    Target("tags", "Tags", 1000),
    Target("birthday", "Birthday", 20),
    Target("notes", "Notes (become internal notes)", 10_000),
]
TARGET_BY_NAME = {t.name: t for t in TARGETS}
NAME_TARGETS = ("first_name", "last_name", "full_name", "company_name", "email")

# Header spellings, compared without case, spaces or punctuation: ours (export_columns) first, then the usual
# headers of field-service and CRM exports (Jobber, Housecall Pro, ServiceTitan, HubSpot, Salesforce, Outlook…).
_ALIASES = {
    "first_name": ["first_name", "first", "given name", "fname", "contact first name", "customer first name"],
    "last_name": ["last_name", "last", "surname", "family name", "lname", "contact last name",
                  "customer last name"],
    "full_name": ["name", "full name", "customer name", "contact name", "client name", "display name",
                  "customer", "client", "contact"],
    "company_name": ["company_name", "company", "business", "business name", "organization", "organisation",
                     "account", "account name", "company name"],
    "kind": ["kind", "type", "customer type", "client type"],
    "email": ["email", "e-mail", "email address", "primary email", "email 1", "emails", "e-mail address",
              "contact email", "customer email"],
    "phone": ["phone", "mobile", "mobile number", "mobile phone", "cell", "cell phone", "phone number",
              "telephone", "tel", "primary phone", "phone 1", "mobile phone number", "main phone", "phones"],
    "street": ["street", "address", "street address", "address 1", "address line 1", "service address",
               "billing street", "street 1", "mailing street", "line 1", "property address", "address1"],
    "address_line2": ["address_line2", "address 2", "address line 2", "street 2", "line 2", "apt", "suite",
                      "unit", "address2"],
    "city": ["city", "town", "billing city", "mailing city", "service city"],
    "state": ["state", "province", "region", "state/province", "state / region", "billing state",
              "mailing state", "county"],
    "postal_code": ["postal_code", "zip", "zip code", "postal code", "postcode", "zip/postal code",
                    "billing zip", "mailing zip", "billing postal code", "mailing postal code"],
    "status": ["status", "customer status", "client status", "lifecycle stage"],
    "language": ["language", "preferred language", "locale"],
    "category": ["category", "customer category"],
    "lead_source": ["lead_source", "lead source", "source", "referral source", "how did you hear about us"],
    "tags": ["tags", "tag", "labels", "customer tags"],
    "birthday": ["birthday", "birth date", "date of birth", "dob", "birthdate"],
    "notes": ["notes", "note", "comments", "internal notes", "customer notes", "description"],
    "": ["customer_id", "created_at", "id"],  # our export's own columns, recognised and not imported
}


def _norm(header: str) -> str:
    return re.sub(r"[^0-9a-z]", "", header.strip().lower())


HEADER_ALIASES = {_norm(alias): target for target, aliases in _ALIASES.items() for alias in aliases}

_STATUSES = {s.value: s.value for s in CustomerStatus} | {"prospect": "lead", "new": "lead",
                                                          "customer": "active", "former": "inactive"}
_LANGUAGES = {"en": "en", "english": "en", "es": "es", "spanish": "es", "español": "es", "espanol": "es",
              "ru": "ru", "russian": "ru", "русский": "ru"}
_KINDS = {"individual": "individual", "person": "individual", "residential": "individual", "home": "individual",
          "business": "business", "company": "business", "commercial": "business"}
_PLAIN_EMAIL = re.compile(r"^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*@([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}$")
_NOT_DIGIT = re.compile(r"\D")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{7,25}$")
_POSTAL = re.compile(r"^[A-Za-z0-9 -]*$")
_FORMULA_PREFIX = ("=", "+", "-", "@", "\t", "\r")


# --- Reading the file --------------------------------------------------------------------------------------

_NOT_CSV = ("This file is not a CSV file. In your spreadsheet or your old tool, save or export the customer "
            "list as CSV (comma or semicolon separated) and upload that file. Nothing was imported.")
_SIGNATURES = {b"PK\x03\x04": "an Excel workbook or a ZIP archive", b"\xd0\xcf\x11\xe0": "an old Excel workbook",
               b"%PDF": "a PDF document", b"\x89PNG": "an image", b"\xff\xd8\xff": "an image"}


def _decode(raw: bytes) -> tuple[str, str]:
    """The text and the name of its encoding: UTF-8 (with or without BOM), UTF-16 with a BOM, else
    Windows-1252 (what Excel on Windows writes)."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "UTF-8 with BOM"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            raise ValidationError("file", _NOT_CSV) from None
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "Latin-1"


def _delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most recognised columns (then the most columns)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    best, best_score = ",", (-1, -1)
    for candidate in (",", ";", "\t"):
        cells = next(csv.reader([first], delimiter=candidate), [])
        score = (sum(1 for c in cells if _norm(c) in HEADER_ALIASES), len(cells))
        if score > best_score:
            best, best_score = candidate, score
    return best


DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass
class ParsedFile:
    encoding: str
    delimiter: str
    headers: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells); card rows emptied
    card_lines: dict[int, str]  # line → the column that looked like a card number


def parse(raw: bytes) -> ParsedFile:
    """The file's header and rows, or one ValidationError("file", message) saying what is wrong with it."""
    if not raw or not raw.strip():
        raise ValidationError("file", "The file is empty. Nothing was imported.")
    if len(raw) > MAX_BYTES:
        raise ValidationError("file", f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB. Split it into "
                                      "smaller files and import them one after the other. Nothing was imported.")
    for signature, what in _SIGNATURES.items():
        if raw.startswith(signature):
            raise ValidationError("file", f"This file is {what}, not a CSV file. Save or export the customer "
                                          "list as CSV and upload that file. Nothing was imported.")
    text, encoding = _decode(raw)
    if "\x00" in text:
        raise ValidationError("file", _NOT_CSV)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    card_lines: dict[int, str] = {}
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if headers is None:
                headers = [f"Column {i + 1}" if not cell.strip() or card_guard.contains_card_number(cell)
                           else cell.strip()[:100] for i, cell in enumerate(record)]
                continue
            if len(rows) >= MAX_ROWS:
                raise ValidationError("file", f"The file has more than {MAX_ROWS:,} customers. Split it into "
                                              "smaller files and import them one after the other. Nothing was "
                                              "imported.")
            card_column = next((i for i, cell in enumerate(record) if card_guard.contains_card_number(cell)), None)
            if card_column is not None:
                card_lines[start] = headers[card_column] if card_column < len(headers) else f"Column {card_column + 1}"
                record = []
            rows.append((start, record))
    except csv.Error as exc:
        raise ValidationError("file", f"Line {line} cannot be read as CSV ({exc}). Check the file in a "
                                      "spreadsheet and export it again. Nothing was imported.") from None
    if headers is None:
        raise ValidationError("file", "The file is empty. Nothing was imported.")
    if not rows and any(_norm(h) in HEADER_ALIASES for h in headers):
        raise ValidationError("file", "The file has a header row but no customers under it. Nothing was imported.")
    if len(headers) == 1 and not rows and not any(_norm(h) in HEADER_ALIASES for h in headers):
        raise ValidationError("file", _NOT_CSV)
    return ParsedFile(encoding, delimiter, headers, rows, card_lines)


FIELD_PREFIX = "field:"  # a custom field's target: field:<definition id>
CUSTOM_HEADER = "custom: "  # our export's header of a custom field column: "custom: <label>"


def field_definitions() -> dict[int, CustomFieldDefinition]:
    """The active custom fields, by id: each can be a column of the file."""
    return {d.id: d for d in custom_fields.definitions()}


def targets(fields: dict[int, CustomFieldDefinition] | None = None) -> list[Target]:
    """What a column can be imported as: the customer's own fields, then each active custom field."""
    fields = field_definitions() if fields is None else fields
    return TARGETS + [Target(f"{FIELD_PREFIX}{d.id}", f"Custom field: {d.label}", custom_fields.MAX_VALUE)
                      for d in fields.values()]


def guess_mapping(headers: list[str], fields: dict[int, CustomFieldDefinition] | None = None) -> list[str]:
    """The target of each column by its header; a target already taken by an earlier column is not reused. A
    custom field is recognised by its label ("Gate code") or our export's header ("custom: Gate code")."""
    fields = field_definitions() if fields is None else fields
    by_label = {_norm(d.label): f"{FIELD_PREFIX}{d.id}" for d in fields.values()}
    by_label.update({_norm(CUSTOM_HEADER + d.label): f"{FIELD_PREFIX}{d.id}" for d in fields.values()})
    used: set[str] = set()
    mapping = []
    for header in headers:
        target = HEADER_ALIASES.get(_norm(header)) or by_label.get(_norm(header), "")
        if target in used:
            target = ""
        if target:
            used.add(target)
        mapping.append(target)
    return mapping


def check_mapping(mapping: list[str], fields: dict[int, CustomFieldDefinition] | None = None) -> None:
    known = {t.name: t for t in targets(fields)}
    chosen = [t for t in mapping if t]
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValidationError("mapping", "Choose what each column holds from the list.")
    twice = sorted({known[t].label for t in chosen if chosen.count(t) > 1})
    if twice:
        raise ValidationError("mapping", f"Each field can come from one column only: {', '.join(twice)}.")
    if not any(t in NAME_TARGETS for t in chosen):
        raise ValidationError("mapping", "No column holds a name or an email. We look for headers like "
                                         "“First Name”, “Last Name”, “Name”, “Company” or “Email”; choose which "
                                         "columns hold them.")


def upload(filename: str | None, raw: bytes, staff: StaffUser | None) -> CustomerImport:
    """Read the file and keep its rows for the preview. Caller commits. Bad file → ValidationError("file")."""
    name = re.split(r"[\\/]", (filename or "").strip())[-1][:120] or "customers.csv"
    if card_guard.contains_card_number(name):
        raise ValidationError("file", "The file name looks like a card number; rename the file.")
    parsed = parse(raw)
    fields = field_definitions()
    mapping = guess_mapping(parsed.headers, fields)
    try:
        check_mapping(mapping, fields)
    except ValidationError as exc:
        raise ValidationError("file", exc.message + " Nothing was imported.") from None
    # Previews nobody confirmed within a day are dropped: they hold customer data we no longer need.
    db.session.execute(delete(CustomerImport).where(CustomerImport.imported_at.is_(None),
                                                    CustomerImport.created_at < clock.now() - timedelta(days=1)))
    imp = CustomerImport(filename=name, staff_id=staff.id if staff else None, encoding=parsed.encoding,
                         delimiter=parsed.delimiter, headers=json.dumps(parsed.headers), mapping=json.dumps(mapping),
                         rows=json.dumps(parsed.rows, ensure_ascii=False),
                         card_lines=json.dumps({str(k): v for k, v in parsed.card_lines.items()}),
                         row_count=len(parsed.rows), update_existing=True, created_at=clock.now())
    db.session.add(imp)
    db.session.flush()
    return imp


def load(import_id: int) -> CustomerImport:
    return found(db.session.get(CustomerImport, import_id), "Import not found.")


def headers_of(imp: CustomerImport) -> list[str]:
    return json.loads(imp.headers)


def mapping_of(imp: CustomerImport) -> list[str]:
    return json.loads(imp.mapping)


def samples(imp: CustomerImport, limit: int = 3) -> list[list[str]]:
    """The first values of each column (for the mapping table)."""
    headers = headers_of(imp)
    values: list[list[str]] = [[] for _ in headers]
    for _, cells in json.loads(imp.rows or "[]"):
        for i, cell in enumerate(cells[:len(headers)]):
            cell = cell.strip()
            if cell and len(values[i]) < limit:
                values[i].append(cell[:60])
        if all(len(v) >= limit for v in values):
            break
    return values


# --- One row -------------------------------------------------------------------------------------------

@dataclass
class Row:
    line: int
    values: dict[str, str]  # target → cleaned text (only non-empty)
    tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    birthday: date | None = None
    custom: dict[int, str | None] = field(default_factory=dict)  # custom field id → stored text
    kind: str = "individual"  # for a new customer

    @property
    def email(self) -> str | None:
        return self.values.get("email")

    @property
    def phone_key(self) -> str | None:
        return normalised_phone(self.values.get("phone"))


def normalised_phone(number: str | None) -> str | None:
    """Digits only, without a leading US/Canada country code: "(555) 201-3344" = "+1 555.201.3344"."""
    digits = _NOT_DIGIT.sub("", number or "")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits or None


def _cell(text: str) -> str:
    """Undo the quote our export (and spreadsheets) put before a cell starting like a formula."""
    text = text.strip()
    if text.startswith("'") and text[1:2] in _FORMULA_PREFIX:
        return text[1:]
    return text


def _birthday(text: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d"):
        try:
            value = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return value if 1900 <= value.year <= 2100 else None
    return None


def read_row(line: int, cells: list[str], mapping: list[str],
             fields: dict[int, CustomFieldDefinition] | None = None) -> Row | str:
    """The row's cleaned values, or the reasons it is refused (one sentence each). Custom fields (`fields`, the
    active definitions) are checked by the client card's own rule (`custom_fields.clean_value`)."""
    values: dict[str, str] = {}
    reasons: list[str] = []
    custom: dict[int, str | None] = {}
    for i, target in enumerate(mapping):
        if not target or i >= len(cells):
            continue
        text = _cell(cells[i])
        if not text:
            continue
        if target.startswith(FIELD_PREFIX):
            definition = (fields or {}).get(int(target[len(FIELD_PREFIX):]))
            if definition is not None:
                _read_custom(definition, text, custom, reasons)
            continue
        spec = TARGET_BY_NAME[target]
        if len(text) > spec.max_length:
            reasons.append(f"{spec.label.split(' (')[0]} is longer than {spec.max_length:,} characters")
            continue
        values[target] = text
    row = Row(line, values, custom=custom)
    _split_full_name(values, reasons)
    _check_contact(values, reasons)
    _check_choices(values, reasons)
    _read_lists(row, reasons)
    if reasons:
        text = "; ".join(reasons)
        return text[:1].upper() + text[1:] + "."
    # A new customer's kind: the file's, else a business when only a company is named. (An existing customer's
    # kind changes only when the file has a kind column.)
    row.kind = values.get("kind") or ("business" if values.get("company_name") and not (
        values.get("first_name") or values.get("last_name")) else "individual")
    if row.kind == "business" and not values.get("company_name"):
        row.kind = "individual"
    return row


def _read_custom(definition: CustomFieldDefinition, text: str, custom: dict[int, str | None],
                 reasons: list[str]) -> None:
    raw: object = text
    if definition.field_type == "multi_list":
        raw = [v for v in re.split(r"\n|;", text)]
    try:
        custom[definition.id] = custom_fields.clean_value(definition, raw)
    except ValidationError as exc:
        reasons.append(exc.message.rstrip("."))


def _split_full_name(values: dict[str, str], reasons: list[str]) -> None:
    """"Maria Lopez" → first and last name; "Lopez, Maria" too. Used when no first/last name column is filled."""
    full = values.pop("full_name", None)
    if full and not (values.get("first_name") or values.get("last_name")):
        if "," in full:
            last, _, first = full.partition(",")
        else:
            first, _, last = full.rpartition(" ") if " " in full else (full, "", "")
        if first.strip():
            values["first_name"] = first.strip()
        if last.strip():
            values["last_name"] = last.strip()
    for name in ("first_name", "last_name"):
        if len(values.get(name, "")) > 80:
            reasons.append(f"{TARGET_BY_NAME[name].label} is longer than 80 characters")


def valid_email(email: str) -> bool:
    """The staff form's rule (email_validator without DNS); plain addresses take a fast path that accepts nothing
    the library would refuse."""
    if _PLAIN_EMAIL.match(email) and ".." not in email and \
            email.rsplit(".", 1)[-1] not in SPECIAL_USE_DOMAIN_NAMES:
        return True
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _check_contact(values: dict[str, str], reasons: list[str]) -> None:
    if "email" in values:
        email = values["email"].lower()
        if not valid_email(email):
            reasons.append(f"“{values['email']}” is not an email address")
        values["email"] = email
    if not (values.get("first_name") or values.get("last_name") or values.get("company_name")
            or values.get("email")):
        reasons.append("no name and no email")
    if "phone" in values and (not _PHONE.match(values["phone"]) or len(_NOT_DIGIT.sub("", values["phone"])) < 7):
        reasons.append(f"“{values['phone']}” is not a phone number")
    if "postal_code" in values and not _POSTAL.match(values["postal_code"]):
        reasons.append(f"postal code “{values['postal_code']}” may hold only letters, digits, spaces and -")


def _check_choices(values: dict[str, str], reasons: list[str]) -> None:
    for target, known, what in (("status", _STATUSES, "status"), ("language", _LANGUAGES, "language"),
                                ("kind", _KINDS, "kind")):
        if target in values:
            value = known.get(values[target].strip().lower())
            if value is None:
                reasons.append(f"unknown {what} “{values[target]}” (use {', '.join(sorted(set(known.values())))})")
            else:
                values[target] = value
    if "category" in values:
        category = next((c for c in CATEGORIES if c.lower() == values["category"].lower()), None)
        if category is None:
            reasons.append(f"unknown category “{values['category']}” (use {', '.join(CATEGORIES)})")
        else:
            values["category"] = category


def _read_lists(row: Row, reasons: list[str]) -> None:
    values = row.values
    if "birthday" in values:
        row.birthday = _birthday(values["birthday"])
        if row.birthday is None:
            reasons.append(f"birthday “{values['birthday']}” is not a date (use YYYY-MM-DD)")
    if "tags" in values:
        row.tags = _unique(t.strip() for t in re.split(r"[,;|]", values["tags"]) if t.strip())
        if any(len(t) > 60 for t in row.tags):
            reasons.append("a tag is longer than 60 characters")
    if "notes" in values:
        row.notes = [n.strip() for n in values["notes"].replace("\r\n", "\n").split(NOTE_SEPARATOR) if n.strip()]


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return list(seen.values())


# --- The plan: what each row will do -----------------------------------------------------------------------

@dataclass
class Refusal:
    line: int
    reason: str


@dataclass
class Match:
    row: Row
    customer: Existing
    changes: list[str]
    new_notes: list[str]

    @property
    def will_update(self) -> bool:
        return bool(self.changes or self.new_notes)

    @property
    def change_labels(self) -> list[str]:
        return [_CHANGE_LABELS[c] for c in self.changes]


@dataclass
class Plan:
    creates: list[Row]
    updates: list[Match]
    skips: list[Match]
    refusals: list[Refusal]

    @property
    def counts(self) -> dict[str, int]:
        return {"created": len(self.creates), "updated": len(self.updates), "skipped": len(self.skips),
                "refused": len(self.refusals)}


_COMPARED = ("first_name", "last_name", "company_name", "kind", "category", "lead_source", "status", "language")
_CHANGE_LABELS = {"first_name": "first name", "last_name": "last name", "company_name": "company",
                  "kind": "kind", "category": "category", "lead_source": "lead source", "status": "status",
                  "language": "language", "email": "email", "phone": "phone", "address": "service address",
                  "birthday": "birthday", "tags": "tags", "custom": "custom fields"}


@dataclass
class Existing:
    """What the import compares of a customer already here, read with a few plain queries (no ORM objects: a
    re-import of 10,000 customers compares 10,000 of these)."""

    id: int
    kind: str
    first_name: str | None
    last_name: str | None
    company_name: str | None
    category: str | None
    lead_source: str | None
    status: str
    language: str
    birthday: date | None
    email: str | None = None
    phone: str | None = None
    address: dict[str, str | None] | None = None  # line1, line2, city, region, postal_code
    tags: set[str] = field(default_factory=set)  # lower-cased
    custom: dict[int, str | None] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return Customer.display_name.fget(self)  # type: ignore[attr-defined]  # the model's own rule


def _changes(row: Row, customer: Existing) -> list[str]:
    """What importing the row would change on the customer: a blank cell never erases what is there."""
    v = row.values
    current = {"first_name": customer.first_name, "last_name": customer.last_name,
               "company_name": customer.company_name, "kind": customer.kind, "category": customer.category,
               "lead_source": customer.lead_source, "status": customer.status, "language": customer.language}
    changed = [t for t in _COMPARED if t in v and (current[t] or "") != v[t]]
    if "kind" in changed and v["kind"] == "business" and not (v.get("company_name") or customer.company_name):
        changed.remove("kind")  # a business needs a company name
    if v.get("email") and customer.email != v["email"]:
        changed.append("email")
    if v.get("phone") and normalised_phone(customer.phone) != row.phone_key:
        changed.append("phone")
    address = customer.address
    if v.get("street") and (address is None or any(
            (address[attr] or "") != v[key] for key, attr in _ADDRESS.items() if v.get(key))):
        changed.append("address")
    if row.birthday and customer.birthday != row.birthday:
        changed.append("birthday")
    if row.tags and {t.lower() for t in row.tags} - customer.tags:
        changed.append("tags")
    if any(value is not None and customer.custom.get(field_id) != value for field_id, value in row.custom.items()):
        changed.append("custom")
    return changed


_ADDRESS = {"street": "line1", "address_line2": "line2", "city": "city", "state": "region",
            "postal_code": "postal_code"}


def plan(imp: CustomerImport, mapping: list[str] | None = None, update_existing: bool | None = None) -> Plan:
    """What confirming would do now, row by row (the database is read, nothing is written)."""
    mapping = mapping if mapping is not None else mapping_of(imp)
    update_existing = imp.update_existing if update_existing is None else update_existing
    fields = field_definitions()
    check_mapping(mapping, fields)
    if imp.rows is None:
        raise ServiceError("This import is finished; upload the file again to import it again.")
    card_lines = {int(k): v for k, v in json.loads(imp.card_lines or "{}").items()}
    refusals: list[Refusal] = []
    rows: list[Row] = []
    seen_email: dict[str, int] = {}
    seen_phone: dict[str, int] = {}
    for line, cells in json.loads(imp.rows):
        if line in card_lines:
            refusals.append(Refusal(line, f"The “{card_lines[line]}” column looks like a card number. Card "
                                          "numbers are never stored; the row was not read."))
            continue
        row = read_row(line, cells, mapping, fields)
        if isinstance(row, str):
            refusals.append(Refusal(line, row))
            continue
        if row.email:
            if row.email in seen_email:
                refusals.append(Refusal(line, f"Same email as line {seen_email[row.email]}."))
                continue
            seen_email[row.email] = line
        elif row.phone_key:
            if row.phone_key in seen_phone:
                refusals.append(Refusal(line, f"Same phone as line {seen_phone[row.phone_key]}, and no email."))
                continue
            seen_phone[row.phone_key] = line
        rows.append(row)

    matched = _match_existing(rows)
    creates: list[Row] = []
    updates: list[Match] = []
    skips: list[Match] = []
    claimed: dict[int, int] = {}
    notes = _note_bodies([c.id for c in matched.values()])
    for row in rows:
        customer = matched.get(row.line)
        if customer is None:
            creates.append(row)
            continue
        if customer.id in claimed:
            refusals.append(Refusal(row.line, f"Same customer as line {claimed[customer.id]} "
                                              f"({customer.display_name})."))
            continue
        claimed[customer.id] = row.line
        new_notes = [n for n in row.notes if n not in notes.get(customer.id, set())]
        match = Match(row, customer, _changes(row, customer), new_notes)
        (updates if update_existing and match.will_update else skips).append(match)
    refusals.sort(key=lambda r: r.line)
    return Plan(creates, updates, skips, refusals)


def _match_existing(rows: list[Row]) -> dict[int, Existing]:
    """line → the existing customer the row is: the one with its email; else, for a row without an email (or a
    customer without one), the one with its normalised phone."""
    by_email: dict[str, int] = {}
    emails = [r.email for r in rows if r.email]
    for i in range(0, len(emails), CHUNK):
        for email, customer_id in db.session.execute(select(CustomerEmail.email, CustomerEmail.customer_id)
                                                     .where(CustomerEmail.email.in_(emails[i:i + CHUNK]))):
            by_email.setdefault(email.lower(), customer_id)
    ids: dict[int, int] = {r.line: by_email[r.email] for r in rows if r.email and r.email in by_email}
    phone_rows = [r for r in rows if r.line not in ids and r.phone_key]
    if phone_rows:
        by_phone: dict[str, int] = {}
        for number, customer_id in db.session.execute(select(CustomerPhone.number, CustomerPhone.customer_id)
                                                      .order_by(CustomerPhone.id)):
            key = normalised_phone(number)
            if key:
                by_phone.setdefault(key, customer_id)
        candidates = {r.line: by_phone[r.phone_key] for r in phone_rows if r.phone_key in by_phone}
        with_email = _customers_with_email(list(candidates.values()))
        for row in phone_rows:
            candidate = candidates.get(row.line)
            if candidate is not None and (not row.email or candidate not in with_email):
                ids[row.line] = candidate
    customers = _existing(list(set(ids.values())))
    return {line: customers[customer_id] for line, customer_id in ids.items() if customer_id in customers}


def _customers_with_email(ids: list[int]) -> set[int]:
    found_ids: set[int] = set()
    for i in range(0, len(ids), CHUNK):
        found_ids.update(db.session.scalars(select(CustomerEmail.customer_id)
                                            .where(CustomerEmail.customer_id.in_(ids[i:i + CHUNK]))))
    return found_ids


def _existing(ids: list[int]) -> dict[int, Existing]:
    found_rows: dict[int, Existing] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for r in db.session.execute(select(Customer.id, Customer.kind, Customer.first_name, Customer.last_name,
                                           Customer.company_name, Customer.category, Customer.lead_source,
                                           Customer.status, Customer.preferred_language, Customer.birthday)
                                    .where(Customer.id.in_(chunk))):
            found_rows[r.id] = Existing(r.id, r.kind, r.first_name, r.last_name, r.company_name, r.category,
                                        r.lead_source, str(r.status), r.preferred_language, r.birthday)
        for customer_id, email in db.session.execute(
                select(CustomerEmail.customer_id, CustomerEmail.email).where(CustomerEmail.customer_id.in_(chunk))
                .order_by(CustomerEmail.is_primary.desc(), CustomerEmail.id)):
            if found_rows[customer_id].email is None:
                found_rows[customer_id].email = email
        mobiles: dict[int, str] = {}
        for customer_id, number, kind in db.session.execute(
                select(CustomerPhone.customer_id, CustomerPhone.number, CustomerPhone.kind)
                .where(CustomerPhone.customer_id.in_(chunk)).order_by(CustomerPhone.id)):
            if kind == "mobile":
                mobiles.setdefault(customer_id, number)
            if found_rows[customer_id].phone is None:
                found_rows[customer_id].phone = number
        for customer_id, number in mobiles.items():
            found_rows[customer_id].phone = number
        for a in db.session.execute(select(Address.customer_id, Address.line1, Address.line2, Address.city,
                                           Address.region, Address.postal_code)
                                    .where(Address.customer_id.in_(chunk), Address.kind == "service")
                                    .order_by(Address.id)):
            if found_rows[a.customer_id].address is None:
                found_rows[a.customer_id].address = {"line1": a.line1, "line2": a.line2, "city": a.city,
                                                     "region": a.region, "postal_code": a.postal_code}
        for customer_id, name in db.session.execute(
                select(customer_tags.c.customer_id, Tag.name).join(Tag, Tag.id == customer_tags.c.tag_id)
                .where(customer_tags.c.customer_id.in_(chunk))):
            found_rows[customer_id].tags.add(name.lower())
        for customer_id, field_id, value in db.session.execute(
                select(CustomFieldValue.customer_id, CustomFieldValue.field_id, CustomFieldValue.value)
                .where(CustomFieldValue.customer_id.in_(chunk))):
            found_rows[customer_id].custom[field_id] = value
    return found_rows


def _customers(ids: list[int]) -> dict[int, Customer]:
    """The customers to update, as ORM objects with what `_update` changes."""
    loaded: dict[int, Customer] = {}
    for i in range(0, len(ids), CHUNK):
        for customer in db.session.scalars(
                select(Customer).where(Customer.id.in_(ids[i:i + CHUNK]))
                .options(selectinload(Customer.emails), selectinload(Customer.phones),
                         selectinload(Customer.addresses))):
            loaded[customer.id] = customer
    return loaded


def _note_bodies(ids: list[int]) -> dict[int, set[str]]:
    bodies: dict[int, set[str]] = {}
    for i in range(0, len(ids), CHUNK):
        for customer_id, body in db.session.execute(select(CustomerNote.customer_id, CustomerNote.body)
                                                    .where(CustomerNote.customer_id.in_(ids[i:i + CHUNK]))):
            bodies.setdefault(customer_id, set()).add(body.strip())
    return bodies


def remap(imp: CustomerImport, mapping: list[str], update_existing: bool) -> Plan:
    """Keep the staff's column mapping and choice for existing customers, and plan with them. Caller commits."""
    headers = headers_of(imp)
    if len(mapping) != len(headers):
        raise ValidationError("mapping", "Choose what each column holds from the list.")
    result = plan(imp, mapping, update_existing)
    imp.mapping, imp.update_existing = json.dumps(mapping), update_existing
    return result


# --- Confirm: one transaction ------------------------------------------------------------------------------

def confirm(imp: CustomerImport, staff: StaffUser | None) -> Plan:
    """Import what the preview showed (re-planned now, with the saved mapping). Flushes; the caller commits once,
    so nothing is imported unless everything is. A second confirmation of the same file is refused."""
    claimed = db.session.execute(update(CustomerImport).where(CustomerImport.id == imp.id,
                                                              CustomerImport.imported_at.is_(None))
                                 .values(imported_at=clock.now())
                                 .execution_options(synchronize_session=False))
    if not getattr(claimed, "rowcount", 0):
        raise ServiceError("This file was already imported.")
    result = plan(imp)
    now = clock.now()
    summary = f"Imported from {imp.filename}"
    staff_id = staff.id if staff is not None else None
    created_ids = _create(result.creates, staff_id, summary, now)
    to_update = _customers([m.customer.id for m in result.updates])
    for match in result.updates:
        _update(to_update[match.customer.id], match, staff_id, now)
    _update_custom(result.updates)
    tag_links = [(cid, row.tags) for cid, row in zip(created_ids, result.creates, strict=True) if row.tags] + \
        [(m.customer.id, m.row.tags) for m in result.updates if m.row.tags]
    _link_tags(tag_links)
    feed = [{"customer_id": cid, "event_type": "customer", "summary": summary[:500], "actor_kind": _actor(staff_id),
             "actor_staff_id": staff_id, "created_at": now} for cid in created_ids]
    feed += [{"customer_id": m.customer.id, "event_type": "customer", "actor_kind": _actor(staff_id),
              "summary": f"{summary}: updated {', '.join(m.change_labels) or 'notes'}"[:500],
              "actor_staff_id": staff_id, "created_at": now} for m in result.updates]
    if feed:
        _bulk_insert(ActivityEvent.__table__, feed)
    db.session.refresh(imp)
    counts = result.counts
    imp.created_count, imp.updated_count = counts["created"], counts["updated"]
    imp.skipped_count, imp.refused_count = counts["skipped"], counts["refused"]
    imp.rows = None  # the customers are in their tables now; the file's copy is not kept
    imp.card_lines = None
    db.session.flush()
    return result


def _actor(staff_id: int | None) -> str:
    return "staff" if staff_id is not None else "system"


def _status_columns(status: str, now: datetime, summary: str) -> dict:
    return {"status": CustomerStatus(status),
            "blacklist_reason": f"Blacklisted in the file ({summary})"[:500] if status == "blacklisted" else None,
            "archived_at": now if status == "archived" else None}


def _create(rows: list[Row], staff_id: int | None, summary: str, now: datetime) -> list[int]:
    if not rows:
        return []
    customers = []
    for row in rows:
        v = row.values
        customers.append({
            "kind": row.kind, "first_name": v.get("first_name"), "last_name": v.get("last_name"),
            "company_name": v.get("company_name"), "preferred_language": v.get("language", "en"),
            "category": v.get("category"), "lead_source": v.get("lead_source"), "birthday": row.birthday,
            "discount_bp": 0, "auth_secret": new_auth_secret(), "autopay_enabled": False, "created_at": now,
            "updated_at": now, **_status_columns(v.get("status", "lead"), now, summary)})
    # Each new customer's id is found by its auth_secret (random, made here): the rows need not come back in order.
    made = dict(_bulk_insert(Customer.__table__, customers, returning=("auth_secret", "id")))
    ids = [made[c["auth_secret"]] for c in customers]
    emails: list[dict] = []
    phones: list[dict] = []
    addresses: list[dict] = []
    notes: list[dict] = []
    custom: list[dict] = []
    for customer_id, row in zip(ids, rows, strict=True):
        v = row.values
        if v.get("email"):
            emails.append({"customer_id": customer_id, "email": v["email"], "is_primary": True})
        if v.get("phone"):
            phones.append({"customer_id": customer_id, "number": v["phone"], "kind": "mobile"})
        if v.get("street"):
            addresses.append({"customer_id": customer_id, "kind": "service", "line1": v["street"],
                              "line2": v.get("address_line2"), "city": v.get("city"), "region": v.get("state"),
                              "postal_code": v.get("postal_code"), "country": "US"})
        notes += [{"customer_id": customer_id, "author_id": staff_id, "body": body, "created_at": now}
                  for body in row.notes]
        custom += [{"customer_id": customer_id, "field_id": field_id, "value": value}
                   for field_id, value in row.custom.items() if value is not None]
    for model, values in ((CustomerEmail, emails), (CustomerPhone, phones), (Address, addresses),
                          (CustomerNote, notes), (CustomFieldValue, custom)):
        if values:
            _bulk_insert(model.__table__, values)
    return ids


def _bulk_insert(table: Table, rows: list[dict], returning: tuple[str, ...] = ()) -> list[tuple]:
    """Insert many rows of one table (every row with the same keys) with plain SQL, no ORM bookkeeping; returns
    the `returning` columns of each row, in no particular order. On PostgreSQL one INSERT … SELECT FROM unnest()
    of one array per column (a single statement whatever the count; psycopg would otherwise send a statement per
    row); elsewhere the driver's executemany. Columns with a Python-side default must be in the rows."""
    keys = list(rows[0])
    dialect = db.session.get_bind().dialect
    missing = [c.name for c in table.columns if c.default is not None and not c.primary_key and c.name not in keys]
    if dialect.name != "postgresql" or missing:
        stmt = insert(table)
        if returning:
            return [tuple(r) for r in db.session.execute(stmt.returning(*(table.c[n] for n in returning)), rows)]
        db.session.execute(stmt, rows)
        return []
    quote = dialect.identifier_preparer.quote
    casts = ", ".join(f"%s::{table.c[k].type.compile(dialect=dialect)}[]" for k in keys)
    sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(k) for k in keys)}) SELECT * FROM unnest({casts})"
           + (f" RETURNING {', '.join(quote(n) for n in returning)}" if returning else ""))
    result = db.session.connection().exec_driver_sql(sql, tuple([_plain(row[k]) for row in rows] for k in keys))
    return [tuple(r) for r in result] if returning else []


def _plain(value: object) -> object:
    """What the column types would bind: naive UTC datetimes (UTCDateTime), status values as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, StrEnum):
        return value.value
    return value


def _update(customer: Customer, match: Match, staff_id: int | None, now: datetime) -> None:
    row, v = match.row, match.row.values
    for target in ("first_name", "last_name", "company_name", "kind", "category", "lead_source"):
        if target in match.changes:
            setattr(customer, target, v[target])
    if "language" in v:
        customer.preferred_language = v["language"]
    if "status" in v and v["status"] != customer.status:
        for key, value in _status_columns(v["status"], now, "imported").items():
            setattr(customer, key, value)
    if row.birthday:
        customer.birthday = row.birthday
    _update_contact(customer, match)
    for body in match.new_notes:
        db.session.add(CustomerNote(customer_id=customer.id, author_id=staff_id, body=body, created_at=now))
    customer.updated_at = now


def _update_custom(matches: list[Match]) -> None:
    """Custom field values of updated customers: changed ones rewritten, new ones added (blank cells skipped)."""
    changed: list[dict] = []
    added: list[dict] = []
    for m in matches:
        for field_id, value in m.row.custom.items():
            if value is None or m.customer.custom.get(field_id) == value:
                continue
            (changed if field_id in m.customer.custom else added).append(
                {"cid": m.customer.id, "fid": field_id, "value": value})
    if changed:
        db.session.execute(update(CustomFieldValue.__table__)
                           .where(CustomFieldValue.__table__.c.customer_id == bindparam("cid"),
                                  CustomFieldValue.__table__.c.field_id == bindparam("fid"))
                           .values(value=bindparam("value")), changed)
    if added:
        db.session.execute(insert(CustomFieldValue.__table__), [{"customer_id": a["cid"], "field_id": a["fid"],
                                                       "value": a["value"]} for a in added])


def _update_contact(customer: Customer, match: Match) -> None:
    v = match.row.values
    if v.get("email") and customer.primary_email != v["email"]:
        primary = next((e for e in customer.emails if e.is_primary), None)
        if primary is None:
            customer.emails.append(CustomerEmail(email=v["email"], is_primary=True))
        else:
            primary.email = v["email"]
    if v.get("phone") and "phone" in match.changes:
        mobile = next((p for p in customer.phones if p.kind == "mobile"), None)
        if mobile is None:
            customer.phones.append(CustomerPhone(number=v["phone"], kind="mobile"))
        else:
            mobile.number = v["phone"]
    if v.get("street") and "address" in match.changes:
        address = customer.address_of("service")
        if address is None:
            address = Address(kind="service", line1=v["street"])
            customer.addresses.append(address)
        for key, attr in _ADDRESS.items():
            if v.get(key):
                setattr(address, attr, v[key])


def _link_tags(links: list[tuple[int, list[str]]]) -> None:
    """Tags by name (case-insensitive, created when new), added to each customer's tags."""
    if not links:
        return
    wanted = _unique(name[:60] for _, names in links for name in names)
    existing: dict[str, int] = {}
    for tag_id, name in db.session.execute(select(Tag.id, Tag.name)):  # a business has tens of tags, not more
        existing.setdefault(name.lower(), tag_id)
    missing = [w for w in wanted if w.lower() not in existing]
    if missing:
        for tag_id, name in db.session.execute(insert(Tag).returning(Tag.id, Tag.name, sort_by_parameter_order=True),
                                               [{"name": n} for n in missing]):
            existing[name.lower()] = tag_id
    customer_ids = list({cid for cid, _ in links})
    have: set[tuple[int, int]] = set()
    for i in range(0, len(customer_ids), CHUNK):
        have.update(db.session.execute(select(customer_tags.c.customer_id, customer_tags.c.tag_id)
                                       .where(customer_tags.c.customer_id.in_(customer_ids[i:i + CHUNK])))
                    .tuples())
    pairs = []
    for customer_id, names in links:
        for name in names:
            pair = (customer_id, existing[name[:60].lower()])
            if pair not in have:
                have.add(pair)
                pairs.append({"customer_id": pair[0], "tag_id": pair[1]})
    if pairs:
        _bulk_insert(customer_tags, pairs)
