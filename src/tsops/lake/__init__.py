"""The Parquet lake (raw, quarantine, clean and forecast zones), its SQL view and retention."""

from tsops.lake.store import ZONES, Lake, PlannedFile, day_dir

__all__ = ["ZONES", "Lake", "PlannedFile", "day_dir"]
