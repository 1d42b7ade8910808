"""The small real data files shipped with tsops (tests, demo, ``tsops init``); see ATTRIBUTION.md."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: name -> (file names in this package, the FileSource preset that reads them)
FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "air_quality_uci": (("AirQualityUCI.csv.gz",), "air_quality_uci"),
    "beijing_aotizhongxin": (("PRSA_Data_Aotizhongxin_20130301-20140228.csv.gz",), "beijing_multisite"),
    "beijing_changping": (("PRSA_Data_Changping_20130301-20140228.csv.gz",), "beijing_multisite"),
    "beijing_multisite": (
        (
            "PRSA_Data_Aotizhongxin_20130301-20140228.csv.gz",
            "PRSA_Data_Changping_20130301-20140228.csv.gz",
        ),
        "beijing_multisite",
    ),
    "sales_weekly": (("sales_transactions_weekly.csv",), "sales_weekly"),
}


def data_dir() -> Path:
    """The directory holding the shipped data files."""
    return Path(str(resources.files("tsops.datasets")))


def paths_of(name: str) -> list[Path]:
    """All files of the shipped data set ``name`` (see :data:`FILES`)."""
    try:
        files, _preset = FILES[name]
    except KeyError:
        raise KeyError(f"no shipped data set {name!r}; available: {sorted(FILES)}") from None
    out = [data_dir() / f for f in files]
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"shipped data file(s) {missing} are missing: reinstall tsops")
    return out


def path_of(name: str) -> Path:
    """The single file of the shipped data set ``name`` (for multi-file sets use :func:`paths_of`)."""
    paths = paths_of(name)
    if len(paths) != 1:
        raise ValueError(f"data set {name!r} has {len(paths)} files: use paths_of({name!r})")
    return paths[0]


def preset_of(name: str) -> str:
    """The FileSource preset that reads the shipped data set ``name``."""
    if name not in FILES:
        raise KeyError(f"no shipped data set {name!r}; available: {sorted(FILES)}")
    return FILES[name][1]
