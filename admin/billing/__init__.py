"""Invoices, staff side: the list, create/edit/void/PDF/send and the invoice page (`invoices`), and what keeps
them paid: automations settings, AutoPay, automatic invoicing and batch sending (`automation`).
Services: portal.services.billing."""
