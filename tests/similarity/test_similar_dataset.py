"""`tsops similar --dataset`: a lake dataset put on a grid and ranked against a pattern."""

import math

from typer.testing import CliRunner

from tsops.cli.main import app


def test_similar_on_a_lake_dataset(sensor_project):
    pattern = ",".join(str(round(math.sin(i / 24 * 2 * math.pi), 3)) for i in range(24))
    res = CliRunner().invoke(app, ["-p", str(sensor_project.root), "similar", "--dataset", "sensors", "--freq", "h",
                                   "--pattern-values", pattern, "--stretch", "0.1", "--no-track", "--top", "2",
                                   "--nan-policy", "interpolate"])
    assert res.exit_code == 0, res.output
    assert "6 series vs a 24-step pattern" in res.output and "closest 2" in res.output
    missing = CliRunner().invoke(app, ["-p", str(sensor_project.root), "similar", "--dataset", "nope", "--freq",
                                       "h", "--pattern-values", pattern, "--no-track"])
    assert missing.exit_code != 0 and "no data in the lake" in missing.output
