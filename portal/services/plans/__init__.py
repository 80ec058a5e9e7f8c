"""Service plans: templates, a customer's plan from draft to cancelled and its add-ons (`lifecycle`), the billing
cycle and dunning (`billing`), what is owed on plans (`reports`) and the portal's view of a plan
(`customer_view`). Depends on `platform`, `crm` and `payments`."""
__all__ = ["billing", "customer_view", "lifecycle", "reports"]
