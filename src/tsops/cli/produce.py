"""``tsops produce``: simulated sensor traffic (Kafka Connect envelopes) to Kafka or JSON Lines files."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Optional

import typer


class Target(StrEnum):
    kafka = "kafka"
    files = "files"


def produce(
    to: Target = typer.Option(Target.files, "--to", help="where to send the messages"),
    bootstrap: str = typer.Option("127.0.0.1:9092", "--bootstrap", help="Kafka bootstrap servers (--to kafka)"),
    topic: str = typer.Option("sensors", "--topic", help="Kafka topic (--to kafka)"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (--to files)"),  # noqa: UP045
    days: float = typer.Option(1.0, "--days", min=0.0001, help="simulated duration in days"),
    sensors: int = typer.Option(9, "--sensors", min=1, help="number of sensors (CO2/temperature/humidity)"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same bytes)"),
    start: str = typer.Option("2024-03-01T00:00:00+00:00", "--start", help="ISO start time (UTC if no offset)"),
    malformed_rate: float = typer.Option(0.0, "--malformed-rate", min=0.0, max=1.0,
                                         help="fraction of samples replaced by malformed messages"),
    missing_rate: float = typer.Option(0.01, "--missing-rate", min=0.0, max=1.0),
    duplicate_rate: float = typer.Option(0.005, "--duplicate-rate", min=0.0, max=1.0),
    late_rate: float = typer.Option(0.005, "--late-rate", min=0.0, max=1.0),
    out_of_order_rate: float = typer.Option(0.005, "--out-of-order-rate", min=0.0, max=1.0),
    spike_rate: float = typer.Option(0.002, "--spike-rate", min=0.0, max=1.0),
    jitter: float = typer.Option(0.05, "--jitter", min=0.0, max=0.49, help="timestamp jitter, fraction of period"),
    outages_per_day: float = typer.Option(0.5, "--outages-per-day", min=0.0),
    records_per_file: int = typer.Option(100_000, "--records-per-file", min=1),
    kafka_opt: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--kafka-opt", help="extra producer setting KEY=VALUE (repeatable)"),
) -> None:
    """Simulate building sensors and produce their envelopes; print counts per sensor and per fault kind."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from tsops.ingest.simulator import SimulatorConfig, default_fleet, simulate, to_files, to_kafka

    console = Console()
    try:
        t0 = dt.datetime.fromisoformat(start)
    except ValueError as e:
        raise typer.BadParameter(f"--start {start!r} is not an ISO date/time: {e}") from e
    if t0.tzinfo is None:
        t0 = t0.replace(tzinfo=dt.UTC)
    try:
        cfg = SimulatorConfig(
            sensors=default_fleet(sensors), start=t0, duration_s=days * 86_400.0, seed=seed, jitter=jitter,
            missing_rate=missing_rate, outages_per_day=outages_per_day, spike_rate=spike_rate,
            duplicate_rate=duplicate_rate, late_rate=late_rate, out_of_order_rate=out_of_order_rate,
            malformed_rate=malformed_rate,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    total = simulate(cfg).truth.total_messages
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"producing to {to.value}", total=total)

        def advance(n: int) -> None:
            progress.advance(task, n)

        if to is Target.files:
            if out is None:
                raise typer.BadParameter("--out DIR is required with --to files")
            res = to_files(cfg, out, records_per_file=records_per_file, progress=advance)
        else:
            conf: dict[str, str] = {"bootstrap.servers": bootstrap, "linger.ms": "20"}
            for kv in kafka_opt or []:
                key, sep, value = kv.partition("=")
                if not sep or not key:
                    raise typer.BadParameter(f"--kafka-opt {kv!r} must look like KEY=VALUE")
                conf[key] = value
            try:
                res = to_kafka(cfg, conf, topic, progress=advance)
            except (RuntimeError, ValueError) as e:
                console.print(f"[red]error:[/red] {e}")
                raise typer.Exit(1) from e

    where = f"{len(res.paths)} file(s) in {out}" if to is Target.files else f"topic {topic!r} at {bootstrap}"
    console.print(f"produced [bold]{res.produced}[/bold] messages to {where}")
    t = Table(title="per sensor")
    for c in ("ss_id", "position", "type", "unit", "period s", "phase s", "messages", "missing", "outage"):
        t.add_column(c, justify="right" if c not in ("position", "type", "unit") else "left")
    for s in res.truth.sensors:
        t.add_row(str(s.ss_id), s.position, s.type_name, s.unit, f"{s.period_s:g}", f"{s.phase_s:g}",
                  str(res.per_sensor.get(s.ss_id, 0)), str(s.missing), str(s.outage))
    console.print(t)
    f = Table(title="injected faults")
    f.add_column("kind")
    f.add_column("count", justify="right")
    for kind, n in sorted(res.truth.faults.items()):
        f.add_row(kind, str(n))
    console.print(f)
    console.print(f"expected valid (parser accepts): {res.truth.expected_valid_count}, malformed: "
                  f"{res.truth.expected_malformed_count}, semantically invalid: {res.truth.semantic_invalid_count}")


if __name__ == "__main__":
    typer.run(produce)
