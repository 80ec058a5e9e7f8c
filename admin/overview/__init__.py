"""The staff dashboard (figures: portal.services.overview.dashboard)."""
