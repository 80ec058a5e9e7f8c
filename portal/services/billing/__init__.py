"""Invoices and what keeps them paid: sending, automatic invoicing, reminders, AutoPay and invoice/receipt PDFs.
Depends on `platform`, `crm`, `payments` and `work`."""
__all__ = ["auto_invoicing", "autopay", "documents", "invoices", "reminders"]
