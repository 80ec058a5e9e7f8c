"""Business rules. No Flask request objects in here (ARCHITECTURE rule 1)."""
