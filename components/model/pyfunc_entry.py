"""MLflow models-from-code entry: the pyfunc wrapper every registered model uses.

MLflow stores this file's source (not a pickle) with the model. At load time it
rebuilds the model from skops / state_dict / LightGBM text files, so preprocessing
travels with the model and no arbitrary pickle is ever loaded. Never imported by our code.
The output is ``TrainedModel.predict_frame``'s, by the model's task: binary ``label``,
``probability``; multiclass ``label``, ``probability``, ``proba_<class>`` per class;
regression ``value``.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from components.model.files import load_model


class TabularModel(PythonModel):
    def load_context(self, context):
        self._model = load_model(context.artifacts["model_dir"])

    # A DataFrame hint is MLflow's "no type-hint validation": the logged signature checks the input, and
    # without a hint MLflow warns at every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self._model.predict_frame(model_input)


mlflow.models.set_model(TabularModel())
