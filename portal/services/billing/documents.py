"""P-2, INV-2: invoice and receipt PDFs (fpdf2), in the customer's language.

Cyrillic needs a Unicode font: DejaVu Sans (Debian's fonts-dejavu-core, installed by `.ci/run`) is used
when present; without it the PDF falls back to the built-in Helvetica and non-Latin letters become "?".
"""
from __future__ import annotations

import copy
import io
import os
from pathlib import Path

from flask import current_app
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from fontTools import subset, ttLib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.font_type_3 import get_color_font_object
from fpdf.fonts import SubsetMap, TTFFont
from sqlalchemy import select

from portal.extensions import db, get_existing
from portal.labels import label
from portal.models import Customer, Estimate, Invoice, Payment
from portal.money import format_money
from portal.services.payments import ledger
from portal.services.platform import mailer, settings

FONT_DIRS = [os.environ.get("PORTAL_PDF_FONT_DIR", ""), "/usr/share/fonts/truetype/dejavu",
             "/usr/share/fonts/dejavu", "/usr/local/share/fonts"]


def _font_file(name: str) -> Path | None:
    for folder in FONT_DIRS:
        if folder and (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


_FONTS: dict[tuple[str, str], tuple[TTFFont, bytes]] = {}  # (file, style) → parsed font and its bytes, per process
# What our documents write: Latin (with accents), Cyrillic, punctuation, currency signs. The layout tables
# (GSUB/GPOS/kern) serve text shaping, which these PDFs do not use.
_KEPT = [*range(0x20, 0x250), *range(0x400, 0x530), *range(0x2000, 0x2070), *range(0x20A0, 0x20C0), 0x2116,
         0x2122, 0x2190, 0x2192, 0x2212, 0x25CF]


def _trimmed(path: Path) -> bytes:
    """The font file cut down once to what the documents can use (DejaVu Sans: 740 KB → ~150 KB), so each PDF
    parses and subsets a small font instead of the whole one."""
    font = ttLib.TTFont(str(path), recalcTimestamp=False)
    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "kern", "FFTM"]
    options.notdef_outline = True
    options.name_IDs = ["*"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=_KEPT)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _font_for(doc: FPDF, path: Path, family: str, style: str) -> TTFFont:
    """Issue 15: a TrueType font read, trimmed and parsed once per process (it was ~60 % of a PDF's time), then
    given to each document with its own font file object and glyph subset (the subsetting at output changes
    the font file object, so that part is never shared)."""
    key = (str(path), style)
    if key not in _FONTS:
        data = _trimmed(path)
        parsed = TTFFont(doc, io.BytesIO(data), f"{family.lower()}{style}", style)  # type: ignore[arg-type]
        _FONTS[key] = (parsed, data)
    parsed, data = _FONTS[key]
    font = copy.copy(parsed)
    font.i = len(doc.fonts) + 1
    font.ttfont = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
    font.biggest_size_pt = 0
    font.missing_glyphs = []
    font._hbfont = None
    font.subset = SubsetMap(font)
    font.color_font = get_color_font_object(doc, font, font.palette_index) if doc.render_color_fonts else None
    return font


class _Doc(FPDF):
    def __init__(self, title: str):
        super().__init__(format="Letter")
        self.set_title(title)
        self.set_creator("Customer portal")
        self.set_auto_page_break(True, margin=18)
        regular, bold = _font_file("DejaVuSans.ttf"), _font_file("DejaVuSans-Bold.ttf")
        if regular and bold:
            self.fonts["body"] = _font_for(self, regular, "Body", "")
            self.fonts["bodyB"] = _font_for(self, bold, "Body", "B")
            self.family_name, self.unicode = "Body", True
        else:
            self.family_name, self.unicode = "helvetica", False
        self.add_page()

    def text_of(self, value) -> str:
        value = str(value)
        return value if self.unicode else value.encode("latin-1", "replace").decode("latin-1")

    def para(self, text, *, size=10, bold=False, h=5.5, align="L"):
        self.set_font(self.family_name, "B" if bold else "", size)
        self.multi_cell(0, h, self.text_of(text), align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def row(self, cells, widths, *, bold=False, fill=False):
        self.set_font(self.family_name, "B" if bold else "", 9.5)
        if fill:
            self.set_fill_color(238, 241, 245)
        for i, (cell, width) in enumerate(zip(cells, widths)):
            self.cell(width, 7, self.text_of(cell), border="B", align="L" if i == 0 else "R", fill=fill)
        self.ln(7)


def _money(cents: int, currency: str, lang: str) -> str:
    return format_money(cents, currency, locale="en_US" if lang == "en" else lang)


def _date(value, lang: str) -> str:
    return format_date(value, "medium") if value else "—"


def _header(doc: _Doc, title: str, customer: Customer) -> None:
    business = settings.get()
    doc.para(business.name, size=16, bold=True, h=8)
    for part in (business.address, business.phone, business.email):
        if part:
            doc.para(part, size=9, h=4.5)
    doc.ln(6)
    doc.para(title, size=14, bold=True, h=7)
    doc.ln(2)
    doc.para(_("Bill to"), size=9, bold=True, h=4.5)
    doc.para(customer.display_name, size=10)
    address = customer.address_of("billing") or customer.address_of("service")
    if address:
        doc.para(address.one_line(), size=9, h=4.5)
    if customer.primary_email:
        doc.para(customer.primary_email, size=9, h=4.5)
    doc.ln(4)


def _line_table(doc: _Doc, line_items, cur: str, lang: str) -> tuple[int, ...]:
    """The line items as a table (invoices and estimates); returns the column widths the totals rows reuse."""
    widths = (100, 18, 36, 36)
    doc.row((_("Description"), _("Qty"), _("Price"), _("Amount")), widths, bold=True, fill=True)
    for li in line_items:
        doc.row((li.description[:70], li.quantity, _money(li.unit_price_cents, cur, lang),
                 _money(li.amount_cents, cur, lang)), widths)
    doc.ln(2)
    return widths


def invoice_pdf(invoice: Invoice, language: str | None = None) -> bytes:
    customer = get_existing(Customer, invoice.customer_id)
    lang = language or customer.preferred_language or "en"
    with force_locale(lang):
        cur = invoice.currency
        doc = _Doc(_("Invoice %(n)s", n=invoice.number))
        _stamp(doc, invoice, lang)
        _header(doc, _("Invoice %(n)s", n=invoice.number), customer)
        doc.para(f"{_('Status')}: {label(invoice.shown_status)}", size=10)
        doc.para(f"{_('Date')}: {_date(invoice.issue_date, lang)}", size=10)
        doc.para(f"{_('Due')}: {_date(invoice.due_date, lang)}", size=10)
        doc.ln(4)
        widths = _line_table(doc, invoice.line_items, cur, lang)
        totals = [(_("Subtotal"), invoice.subtotal_cents)]
        if invoice.discount_cents:
            totals.append((_("Discount"), -invoice.discount_cents))
        if invoice.tax_cents:
            totals.append((_("Tax"), invoice.tax_cents))
        totals += [(_("Total"), invoice.total_cents), (_("Paid"), invoice.paid_cents)]
        if invoice.refunded_cents:
            totals.append((_("Refunded to you"), -invoice.refunded_cents))
        totals.append((_("Balance due"), invoice.balance_cents))
        for name, cents in totals:
            doc.row((name, "", "", _money(cents, cur, lang)), widths, bold=name in (_("Total"), _("Balance due")))
        if invoice.status in PAYABLE and invoice.balance_cents > 0:
            _pay_online(doc, pay_url(invoice), invoice.balance_cents, cur, lang)
        history = [e for e in ledger.invoice_history(invoice) if e.type in ("payment", "deposit", "refund")]
        if history:
            doc.ln(4)
            doc.para(_("Payments"), size=11, bold=True, h=6)
            for entry in history:
                amount = _money(entry.amount_cents, cur, lang)
                what = _("Refund") if entry.type == "refund" else _("Payment")
                doc.para(f"{_date(entry.when.date(), lang)} · {what} · {amount}", size=9.5)
        if invoice.notes:
            doc.ln(4)
            doc.para(invoice.notes, size=9.5)
        return bytes(doc.output())


def receipt_pdf(payment: Payment, language: str | None = None) -> bytes:
    customer = get_existing(Customer, payment.customer_id)
    lang = language or customer.preferred_language or "en"
    with force_locale(lang):
        cur = payment.currency
        doc = _Doc(_("Receipt P-%(n)s", n=payment.id))
        _header(doc, _("Receipt P-%(n)s", n=payment.id), customer)
        paid_with = (f"{(payment.card_brand or 'card').title()} •••• {payment.card_last4}" if payment.method == "card"
                     else label(payment.method) + (f" ({payment.reference})" if payment.reference else ""))
        for name, value in ((_("Date"), _date(payment.received_at.date(), lang)),
                            (_("Amount"), _money(payment.amount_cents, cur, lang)), (_("Paid with"), paid_with)):
            doc.para(f"{name}: {value}", size=10.5)
        detail = ledger.payment_detail(payment)
        if detail.allocations or detail.plan_payments or detail.credit_cents:
            doc.ln(3)
            doc.para(_("What this payment paid"), size=11, bold=True, h=6)
            for invoice, cents in detail.allocations:
                doc.para(f"{_('Invoice %(n)s', n=invoice.number)}: {_money(cents, cur, lang)} · "
                         f"{_('balance left %(b)s', b=_money(invoice.balance_cents, invoice.currency, lang))}",
                         size=10)
            for row, cents in detail.plan_payments:
                doc.para(f"{_('Service plan')}: {row.plan.name}, {_('due %(date)s', date=_date(row.due_date, lang))}: "
                         f"{_money(cents, cur, lang)} · {label(row.status)}", size=10)
            if detail.credit_cents:
                doc.para(f"{_('Credit on account')}: {_money(detail.credit_cents, cur, lang)} · "
                         f"{_('applied to your next invoice')}", size=10)
        refunds = [r for r in detail.refunds if r.status != "failed"]
        for refund in refunds:
            when, amount = _date(refund.created_at.date(), lang), _money(refund.amount_cents, cur, lang)
            doc.para(f"{_('Refund')} {when}: −{amount}", size=10)
        doc.ln(4)
        doc.para(_("Thank you!"), size=11, bold=True)
        return bytes(doc.output())


PAYABLE = ("open", "partially_paid")


def pay_url(invoice: Invoice) -> str:
    """Where the invoice is paid online: the portal's pay page (a login link is asked for there, so the PDF
    carries no login token however far it is forwarded)."""
    return f"{current_app.config['BASE_URL'].rstrip('/')}/portal/invoices/{invoice.id}/pay"


def _stamp(doc: _Doc, invoice: Invoice, lang: str) -> None:
    """Issue 19: a stamp in the top right corner: PAID / REFUNDED / VOID, or the balance due."""
    status = invoice.shown_status
    if status == "paid":
        text, color = _("PAID"), (22, 101, 52)
    elif status in ("refunded", "partially_refunded"):
        text, color = label(status).upper(), (30, 58, 138)
    elif status == "void":
        text, color = _("VOID"), (82, 96, 109)
    elif invoice.balance_cents > 0:
        text = _("BALANCE DUE %(amount)s", amount=_money(invoice.balance_cents, invoice.currency, lang))
        color = (185, 28, 28)
    else:
        return
    x, y = doc.get_x(), doc.get_y()
    doc.set_font(doc.family_name, "B", 13)
    width = doc.get_string_width(doc.text_of(text)) + 10
    doc.set_draw_color(*color)
    doc.set_text_color(*color)
    doc.set_line_width(0.8)
    doc.set_xy(doc.w - doc.r_margin - width, doc.t_margin)
    doc.cell(width, 10, doc.text_of(text), border=1, align="C")
    doc.set_text_color(0, 0, 0)
    doc.set_draw_color(0, 0, 0)
    doc.set_line_width(0.2)
    doc.set_xy(x, y)


def _pay_online(doc: _Doc, url: str, cents: int, currency: str, lang: str) -> None:
    doc.ln(4)
    doc.set_font(doc.family_name, "B", 11)
    doc.set_text_color(29, 78, 216)
    doc.cell(0, 7, doc.text_of(_("Pay online: %(amount)s", amount=_money(cents, currency, lang))), link=url,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.set_font(doc.family_name, "", 9.5)
    doc.cell(0, 5, doc.text_of(url), link=url, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.set_text_color(0, 0, 0)


def estimate_pdf(estimate: Estimate, language: str | None = None) -> bytes:
    """P-5: an estimate as a PDF (portal and admin), in the customer's language."""
    customer = get_existing(Customer, estimate.customer_id)
    lang = language or customer.preferred_language or "en"
    with force_locale(lang):
        cur = estimate.currency
        doc = _Doc(_("Estimate %(n)s", n=estimate.number))
        _header(doc, _("Estimate %(n)s", n=estimate.number), customer)
        doc.para(estimate.title, size=11, bold=True)
        doc.para(f"{_('Status')}: {label(estimate.status)}", size=10)
        if estimate.sent_at:
            doc.para(f"{_('Date')}: {_date(estimate.sent_at.date(), lang)}", size=10)
        if estimate.valid_until:
            doc.para(f"{_('Valid until')}: {_date(estimate.valid_until, lang)}", size=10)
        doc.ln(4)
        widths = _line_table(doc, estimate.line_items, cur, lang)
        doc.row((_("Total"), "", "", _money(estimate.total_cents, cur, lang)), widths, bold=True)
        if estimate.deposit_cents:
            doc.row((_("Deposit to approve"), "", "", _money(estimate.deposit_cents, cur, lang)), widths)
        if estimate.approved_at and estimate.approved_name:
            doc.ln(4)
            doc.para(_("Approved by %(name)s on %(date)s", name=estimate.approved_name,
                       date=_date(estimate.approved_at.date(), lang)), size=10)
        if estimate.message:
            doc.ln(4)
            doc.para(estimate.message, size=9.5)
        return bytes(doc.output())


def _invoice_attachment(invoice_id: int, language: str) -> tuple[str, bytes] | None:
    invoice = db.session.get(Invoice, invoice_id)
    return (f"invoice-{invoice.number}.pdf", invoice_pdf(invoice, language)) if invoice is not None else None


def _invoice_filenames(ids: list[int]) -> dict[int, str]:
    rows = db.session.execute(select(Invoice.id, Invoice.number).where(Invoice.id.in_(ids))).all() if ids else []
    return {ident: f"invoice-{number}.pdf" for ident, number in rows}


INVOICE_PDF = mailer.AttachmentKind(build=_invoice_attachment, filenames=_invoice_filenames)
"""An invoice attached to an email as its PDF (INV-4), rendered in the email's language at delivery."""
