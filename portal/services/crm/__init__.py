"""Customers and what staff know about them: the customer record, internal notes, the contact log and tasks,
custom fields, and messages between customers and staff. Depends on `platform` only."""
__all__ = ["custom_fields", "customers", "exporting", "importing", "messages", "records"]
