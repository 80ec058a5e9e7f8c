"""The work itself: work orders (jobs) and their visits, appointments as customers see them, estimates with
their deposits, and the line items shared by jobs, estimates and invoices. Depends on `platform`, `crm`
and `payments`."""
__all__ = ["appointments", "estimates", "line_items", "work_orders"]
