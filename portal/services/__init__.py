"""Business rules. No Flask request objects in here (docs/architecture.md)."""
