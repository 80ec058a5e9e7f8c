"""Service plans, staff side: templates, a customer's plans, add-ons, the plan's card, collecting and
cancelling (`views`), the overdue dashboard and plan report (`reports`). Services: portal.services.plans."""
