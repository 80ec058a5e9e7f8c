"""Errors services raise; views put them on the form (docs/architecture.md)."""


class ServiceError(Exception):
    """A rule refused the action. `message` is fit to show to the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """Bad input for one field."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


class NotFound(ServiceError):
    def __init__(self, message: str = "Not found."):
        super().__init__(message)
