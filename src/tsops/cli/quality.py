"""``tsops quality``: data-quality studies.

Register in the root CLI with ``app.add_typer(quality_app, name="quality")`` where
``from tsops.cli.quality import app as quality_app``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from tsops.cli import ui

app = typer.Typer(help="Data-quality studies.", no_args_is_help=True)
console = ui.console


@app.callback()
def quality() -> None:
    """Data-quality studies (cleaning itself runs in ``tsops process``)."""


def read_long_csv(path: Path, series_id: str | None = None):
    """Read a long-format CSV (series_id, ts, value, ...) and return one series' rows."""
    import pandas as pd

    if not path.is_file():
        raise typer.BadParameter(f"CSV file {path} does not exist", param_hint="--csv")
    df = pd.read_csv(path)
    missing = {"series_id", "ts", "value"} - set(df.columns)
    if missing:
        raise typer.BadParameter(f"{path} lacks column(s) {sorted(missing)}; long format needs series_id, ts, "
                                 "value", param_hint="--csv")
    df["series_id"] = df["series_id"].astype(str)
    sid = series_id if series_id is not None else sorted(df["series_id"].unique())[0]
    one = df[df["series_id"] == sid]
    if one.empty:
        raise typer.BadParameter(f"series {sid!r} not in {path} (first ids: {sorted(df['series_id'].unique())[:5]})",
                                 param_hint="--series-id")
    return one


def read_lake_series(dataset: str, series_id: str | None, zone: str = "raw", season_length: int | None = None):
    """One series of a lake dataset (the project from -p / the cwd) as a long frame, and its season: the
    override ``season_length`` or the main season of the series profile (None: the profile has none)."""
    from tsops.cli.main import load

    project = load()
    lake = project.lake()
    if series_id is None:
        ids = [s["series_id"] for s in project.catalog().list_series(dataset)]
        if not ids:
            raise typer.BadParameter(f"dataset {dataset!r} has no series in the catalog (run `tsops ingest`)",
                                     param_hint="--dataset")
        series_id = ids[0]
    t = lake.read(zone, dataset, series=[series_id], columns=["series_id", "ts", "value"])
    if t.num_rows == 0:
        raise typer.BadParameter(f"series {series_id!r} has no rows in the {zone} zone of {dataset!r}",
                                 param_hint="--series-id")
    if season_length is None:
        prof = project.catalog().get_profile(dataset, series_id)
        if prof is None:
            raise typer.BadParameter(f"no profile for series {series_id} of dataset {dataset}: run `tsops process "
                                     f"-d {dataset}` first (or pass --season-length N)", param_hint="--season-length")
        season_length = prof.season_length
    return t.to_pandas(), season_length


@app.command()
def compare(
    csv: Optional[Path] = typer.Option(None, "--csv", help="long-format CSV with series_id, ts, value"),  # noqa: UP045
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="a lake dataset (raw zone)"),  # noqa: UP045
    series_id: Optional[str] = typer.Option(None, "--series-id", help="series to study (default: the first)"),  # noqa: UP045
    inject_rate: float = typer.Option(0.02, help="share of training points turned into spikes"),
    seed: int = typer.Option(0, help="random seed of the injection"),
    horizon: int = typer.Option(48, help="forecast horizon (points held out as the test set)"),
    model: str = typer.Option("auto_ets", help="auto_ets or seasonal_naive"),
    season_length: Optional[int] = typer.Option(  # noqa: UP045
        None, min=1, help="season in samples (1 = none); default: the series profile (needed with --csv)"),
    repeats: int = typer.Option(1, help="average over this many injections (seeds seed, seed+1, ...)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write the table as CSV"),  # noqa: UP045
) -> None:
    """Inject anomalies into a real series, treat them (none, drop, min/max, EMA, interpolate), forecast and
    compare RMSE / MAE / MAPE per treatment."""
    from tsops.quality.compare import TREATMENT_STUDY, compare_treatments

    if (csv is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --csv or --dataset")
    if csv is not None:
        if season_length is None:
            raise typer.BadParameter("a CSV file has no series profile: give its season with --season-length N "
                                     "(1 = none)", param_hint="--season-length")
        df, season, source = read_long_csv(csv, series_id), season_length, "given"
    else:
        df, season = read_lake_series(dataset, series_id, season_length=season_length)
        source = "given" if season_length is not None else "profile"
    total = len(TREATMENT_STUDY) * max(1, repeats)
    with ui.step(f"{model} forecasts per treatment", total=total, info="") as (bar, task), ui.LogTap(
            "tsops.quality.compare", r"treatment (\S+) done",
            lambda rec, m: bar.update(task, advance=1, info=m.group(1)), level=logging.INFO):
        res = compare_treatments(df, inject_rate=inject_rate, seed=seed, horizon=horizon, model=model,
                                 season_length=season, repeats=repeats)
    m = res.attrs["season_length"]
    table = ui.table(title=f"{res.attrs['series_id']}: {model}, horizon {horizon}, "
                          f"season {m if m > 1 else 'none'} ({source}), {int(res['n_injected'].iloc[0])} spikes injected")
    table.add_column("treatment")
    for c in ("rmse", "mae", "mape", "n_flagged"):
        table.add_column(c, justify="right")
    for name, r in res.iterrows():
        table.add_row(str(name), f"{r['rmse']:.4g}", f"{r['mae']:.4g}", f"{r['mape']:.3g}", str(int(r["n_flagged"])))
    console.print(table)
    p, rc = res["precision"].iloc[1], res["recall"].iloc[1]
    console.print(f"IQR detection: precision {p:.2f}, recall {rc:.2f}")
    if out is not None:
        res.to_csv(out)
        console.print(f"written {out}")
