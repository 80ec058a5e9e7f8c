"""Read models that gather several domains onto one page: the portal home and the staff client card.
Nothing imports this package except blueprints and admin views."""
__all__ = ["client_card", "dashboard", "portal_home"]
