import numpy as np
import pytest

from tsops.models import make_model
from tsops.models.metrics import smape


@pytest.mark.slow
@pytest.mark.parametrize("name", ["auto_theta", "auto_ets", "mstl"])
def test_statsforecast_wrappers_forecast_the_m4_slice(m4_small, name):
    train, test = m4_small
    m = make_model(name, season_length=24, max_length=24 * 10).fit(train)
    f = m.predict_array(48)
    assert f.shape == (5, 48) and np.isfinite(f).all()
    assert m.fallbacks_ == []
    err = np.mean([smape(test[s], row) for s, row in zip(m.history_.ids, f, strict=True)])
    assert err < 40.0  # these series are strongly seasonal: a working model is far from random


def test_statsforecast_wrapper_validates_its_model_name():
    with pytest.raises(ValueError, match="AutoETS"):
        make_model("statsforecast", model="Prophet", season_length=None)
