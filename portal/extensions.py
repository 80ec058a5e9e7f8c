"""Extensions, created unbound (docs/architecture.md)."""
from typing import Any, TypeVar, cast

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import CursorResult, Executable, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
mail = Mail()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

M = TypeVar("M")


def execute_dml(statement: Executable, params: Any = None, **options: Any) -> CursorResult[Any]:
    """Run an UPDATE/DELETE in the current session; its result's `rowcount` says how many rows it changed (a
    conditional UPDATE that changed one row is a claim won). `Session.execute` is typed as a plain `Result`."""
    return cast("CursorResult[Any]", db.session.execute(statement, params, **options))


def get_existing(model: type[M], ident: Any) -> M:
    """`db.session.get` for a row that must exist (its foreign key is NOT NULL, or it was claimed or loaded earlier
    in the transaction). A missing row is a bug, not a 404: it raises `LookupError` here rather than an
    AttributeError on None further on. Rows the user asks for go through `services.errors.found` (NotFound)."""
    row = db.session.get(model, ident)
    if row is None:
        raise LookupError(f"{model.__name__} {ident!r} does not exist")
    return row
