"""Money moving through Stripe: cards on file, charge attempts and their settlement, refunds, Stripe webhooks,
decline explanations, the money read models (ledger) and linking an existing Stripe account's customers and
saved cards (stripe_link). `gateway` is the only module that imports `stripe`.
Depends on `platform`; tells other domains what happened through `portal.services.events`."""
__all__ = ["cards", "charges", "declines", "gateway", "ledger", "refunds", "stripe_link", "webhooks"]
