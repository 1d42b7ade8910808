"""``tsops similar``: series whose shape follows a pattern under dynamic time warping.

Registered in the root CLI as ``app.command("similar")(similar)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tsops.cli import ui

console = ui.console
log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "tsops-similarity"


def _parse_sweep(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--sweep") from None
    if not values:
        raise typer.BadParameter("no stretch factor given", param_hint="--sweep")
    return list(dict.fromkeys(values))


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise typer.BadParameter(f"{path} does not exist", param_hint="--input")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def load_values(
    path: Path | None,
    fmt: str,
    id_column: str | None,
    value_columns: str | None,
    freq: str | None,
    agg: str,
    demo: bool,
    dataset: str | None = None,
):
    """(values (n, m), ids, value column names, id column name) from the command's input options."""
    import numpy as np

    from tsops.similarity.frames import parse_value_columns, to_wide, wide_matrix

    if dataset is not None:
        df = _read_lake(dataset)
        fmt = "long"
    elif demo:
        from tsops.datasets.sales import load_sales_weekly

        df = load_sales_weekly().reset_index()
        id_column = id_column or "Product_Code"
    elif path is None:
        raise typer.BadParameter("give --input FILE (wide CSV/Parquet, or long series_id,ts,value) or --demo",
                                 param_hint="--input")
    else:
        df = _read_table(path)
    is_long = fmt == "long" or (fmt == "auto" and {"series_id", "ts", "value"} <= set(df.columns))
    if is_long:
        if not freq:
            raise typer.BadParameter("long input needs --freq (grid to resample onto, e.g. W, D, h)",
                                     param_hint="--freq")
        wide = to_wide(df, freq, agg=agg)
        cols = [str(c) for c in wide.columns]
        wide.columns = cols
        return wide.to_numpy(dtype=np.float64), wide.index.astype(str).to_numpy(), cols, "series_id"
    cols = parse_value_columns(value_columns, list(df.columns.astype(str))) if value_columns else None
    values, ids, cols = wide_matrix(df.rename(columns=str), id_column, cols)
    return values, np.asarray([str(i) for i in ids]), cols, id_column


def _read_lake(dataset: str):
    """A lake dataset as a long frame: the clean zone, or the raw zone before `tsops process` has run."""
    from tsops.cli.main import load

    lake = load().lake()
    for zone in ("clean", "raw"):
        if lake.files(zone, dataset):
            return lake.read(zone, dataset, columns=["series_id", "ts", "value"]).to_pandas()
    raise typer.BadParameter(f"dataset {dataset!r} has no data in the lake (run `tsops ingest`)",
                             param_hint="--dataset")


def _project_tracking() -> tuple[str | None, str | None]:
    """(tracking URI, artifact root) of the project given with ``-p`` / $TSOPS_PROJECT or found above the
    cwd; (None, None) outside a project (then $MLFLOW_TRACKING_URI or ./mlflow.db apply)."""
    from tsops.cli.main import UserError, load, state
    from tsops.config import ConfigError

    try:
        project = load()
    except (ConfigError, UserError):
        if state.project_dir is not None:  # -p given: its error is the one to show
            raise
        return None, None
    return project.tracking_uri, project.artifacts_uri


def _pattern(pattern: Path | None, pattern_values: str | None, pattern_column: str | None, demo: bool):
    from tsops.similarity.frames import parse_pattern_values, read_pattern

    if pattern is not None and pattern_values is not None:
        raise typer.BadParameter("give either --pattern or --pattern-values, not both", param_hint="--pattern")
    if pattern is not None:
        if not pattern.is_file():
            raise typer.BadParameter(f"{pattern} does not exist", param_hint="--pattern")
        return read_pattern(str(pattern), pattern_column)
    if pattern_values is not None:
        return parse_pattern_values(pattern_values)
    if demo:
        from tsops.datasets.sales import load_capacity_pattern

        return load_capacity_pattern()
    raise typer.BadParameter("give --pattern FILE or --pattern-values 1,2,3", param_hint="--pattern")


def _series_table(title: str, table, rows, show_location: bool) -> Table:
    out = Table(title=title)
    out.add_column("rank", justify="right")
    out.add_column("series", overflow="fold")
    out.add_column("distance", justify="right")
    out.add_column("z", justify="right")
    if show_location:
        out.add_column("start", justify="right")
    for _, row in table.iloc[rows].iterrows():
        cells = [str(row["rank"]), str(row["id"]), f"{row['distance']:.4f}", f"{row['zscore']:+.2f}"]
        if show_location:
            cells.append(str(row["location"]))
        out.add_row(*cells)
    return out


def similar(
    input: Optional[Path] = typer.Option(  # noqa: UP045 - typer reads these annotations
        None, "--input", "-i", help="wide CSV/Parquet (one row per series) or long series_id,ts,value"),
    fmt: str = typer.Option("auto", "--format", help="auto | wide | long"),
    dataset: Optional[str] = typer.Option(  # noqa: UP045
        None, "--dataset", "-d", help="a lake dataset of the project (clean zone, else raw), put on --freq"),
    id_column: Optional[str] = typer.Option(None, "--id-column", help="wide input: column with series ids"),  # noqa: UP045
    value_columns: Optional[str] = typer.Option(  # noqa: UP045
        None, "--value-columns", help="wide input: W0..W51 range and/or comma list (default: numeric columns)"),
    freq: Optional[str] = typer.Option(None, "--freq", help="long input: grid frequency (W, D, h, 15min)"),  # noqa: UP045
    agg: str = typer.Option("mean", "--agg", help="long input: aggregation per grid bin"),
    pattern: Optional[Path] = typer.Option(None, "--pattern", help="pattern file (CSV column or numbers)"),  # noqa: UP045
    pattern_column: Optional[str] = typer.Option(None, "--pattern-column", help="column of --pattern CSV"),  # noqa: UP045
    pattern_values: Optional[str] = typer.Option(None, "--pattern-values", help="pattern as 1,2,3,..."),  # noqa: UP045
    stretch: Optional[float] = typer.Option(  # noqa: UP045
        None, "--stretch", help="band half-width: fraction of the length (<= 1) or steps (> 1); default 0.05"),
    sweep_spec: Optional[str] = typer.Option(  # noqa: UP045
        None, "--sweep", help="several stretch factors, e.g. 0,0.01,0.025,0.05,0.1,0.25,0.5"),
    top: int = typer.Option(10, "--top", min=1, help="closest/farthest series to show"),
    scale_tolerance: Optional[float] = typer.Option(  # noqa: UP045
        None, "--scale-tolerance", help="keep series whose mean is within this ratio (>= 1) of the pattern's"),
    normalize: bool = typer.Option(True, "--normalize/--no-normalize", help="z-normalise series and pattern"),
    nan_policy: str = typer.Option("raise", "--nan-policy", help="raise | interpolate (NaNs along time)"),
    track: bool = typer.Option(True, "--track/--no-track", help="log runs to MLflow"),
    tracking_uri: Optional[str] = typer.Option(  # noqa: UP045
        None, "--tracking-uri",
        help="MLflow URI (else the project's tracking config, else $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)"),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, "--experiment", help="MLflow experiment"),
    register: Optional[str] = typer.Option(  # noqa: UP045
        None, "--register", help="register the chosen run's model under this name (alias champion)"),
    choose: str = typer.Option(
        "ratio", "--choose", help="'ratio' (lowest p10/median distance ratio) or one of the swept stretches"),
    demo: bool = typer.Option(False, "--demo", help="shipped UCI weekly sales x capacity pattern"),
) -> None:
    """Rank series by DTW distance to a pattern; log one MLflow run per stretch factor."""
    import numpy as np

    from tsops.similarity.analysis import choose_stretch, summarize
    from tsops.similarity.frames import scale_filter
    from tsops.similarity.tracking import compute_stretch

    if stretch is not None and sweep_spec is not None:
        raise typer.BadParameter("give --stretch or --sweep, not both", param_hint="--stretch")
    if fmt not in ("auto", "wide", "long"):
        raise typer.BadParameter(f"{fmt!r}: expected auto, wide or long", param_hint="--format")
    if nan_policy not in ("raise", "interpolate"):
        raise typer.BadParameter(f"{nan_policy!r}: expected raise or interpolate", param_hint="--nan-policy")
    stretches = _parse_sweep(sweep_spec) if sweep_spec is not None else [0.05 if stretch is None else stretch]
    if value_columns is None and demo:
        value_columns = "W0..W51"
    if register and not track:
        raise typer.BadParameter("--register needs MLflow tracking (drop --no-track)", param_hint="--register")
    try:
        values, ids, cols, id_col = load_values(input, fmt, id_column, value_columns, freq, agg, demo, dataset)
        pat = _pattern(pattern, pattern_values, pattern_column, demo)
        if values.shape[1] < len(pat):
            raise ValueError(f"series have {values.shape[1]} steps but the pattern has {len(pat)}")
        if values.shape[1] > len(pat):
            console.print(f"[yellow]series have {values.shape[1]} steps, the pattern {len(pat)}: "
                          "searching the best-matching window of each series[/yellow]")
        if scale_tolerance is not None:
            keep = scale_filter(values, pat, scale_tolerance)
            console.print(f"scale tolerance x{scale_tolerance:g}: {int(keep.sum())} of {len(keep)} series kept")
            values, ids = values[keep], ids[keep]
        if len(values) == 0:
            raise ValueError("no series left to compare (check --scale-tolerance and the input)")
        for s in stretches:
            from tsops.similarity.dtw import band_halfwidth

            band_halfwidth(s, len(pat))
        artifact_root = None
        if track and tracking_uri is None:
            tracking_uri, artifact_root = _project_tracking()
        if track:
            from tsops.similarity.tracking import sweep

            with console.status("computing distances and logging to MLflow") as status:
                res = sweep(
                    values, ids, pat, stretches, experiment=experiment, tracking_uri=tracking_uri,
                    id_column=id_col, value_columns=cols, normalize=normalize, nan_policy=nan_policy,
                    choose=choose, register=register, artifact_root=artifact_root,
                    extra_params={"n_input_series": int(len(values))},
                    progress=lambda msg: status.update(f"{msg}: distances, artifacts, model"),
                )
            results, chosen = res.results, res.chosen
        else:
            results = [compute_stretch(values, ids, pat, s, normalize, nan_policy) for s in stretches]
            chosen = choose_stretch({r.stretch: r.stats for r in results}, choose)
            res = None
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None

    summary = Table(title=f"{len(values)} series vs a {len(pat)}-step pattern")
    for col in ("stretch", "half-width", "median", "mean", "p10", "p10/median", "z<=-2", "run"):
        summary.add_column(col, justify="right" if col != "run" else "left")
    for r in results:
        mark = " *" if r.stretch == chosen else ""
        summary.add_row(f"{r.stretch:g}{mark}", str(r.halfwidth), f"{r.stats['median']:.4f}",
                        f"{r.stats['mean']:.4f}", f"{r.stats['p10']:.4f}", f"{r.stats['p10_median_ratio']:.3f}",
                        str(int((r.table['zscore'] <= -2).sum())), r.run_id or "-")
    console.print(summary)
    best = next(r for r in results if r.stretch == chosen)
    order = np.argsort(best.table["distance"].to_numpy(), kind="stable")
    k = min(top, len(order))
    subseq = values.shape[1] > len(pat)
    console.print(_series_table(f"closest {k} (stretch {chosen:g})", best.table, order[:k], subseq))
    console.print(_series_table(f"farthest {k} (stretch {chosen:g})", best.table, order[::-1][:k], subseq))
    console.print(f"median distance at stretch {chosen:g}: [bold]{summarize(best.table['distance'])['median']:.4f}[/bold]"
                  + (" (chosen by lowest p10/median ratio)" if len(results) > 1 and choose == "ratio" else ""))
    if res is not None:
        from tsops.masking import mask_url
        from tsops.tracking.mlflow_utils import resolve_tracking_uri

        console.print(f"MLflow: {mask_url(resolve_tracking_uri(tracking_uri))} experiment {experiment!r}"
                      + (f", parent run {res.parent_run_id}" if res.parent_run_id else ""))
        if res.registered:
            console.print(f"registered [bold]{res.registered['name']}[/bold] version {res.registered['version']} "
                          f"(run {res.registered['run_id']}), alias champion: "
                          f"models:/{res.registered['name']}@champion")
