"""MLflow "models from code" entry point of the tsops forecaster pyfunc (no pickled Python object).

``log_forecaster`` logs this file as the model's code; loading the model runs it, which registers
:class:`tsops.tracking.forecast_pyfunc.TsopsForecastModel` (it reads the saved forecaster from its artifacts).
"""

import mlflow.models

from tsops.tracking.forecast_pyfunc import TsopsForecastModel

mlflow.models.set_model(TsopsForecastModel())
