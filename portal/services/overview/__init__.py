"""Read models that gather several domains onto one page: the portal home and the staff client card; and the whole
business as one ZIP of CSV files (data_export). Nothing imports this package except blueprints and admin views."""
__all__ = ["client_card", "dashboard", "data_export", "portal_home"]
