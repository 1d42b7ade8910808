"""The metadata catalog (SQLAlchemy; SQLite by default, PostgreSQL in production)."""

from tsops.catalog.store import Catalog, us_to_iso

__all__ = ["Catalog", "us_to_iso"]
