"""MLflow models-from-code entry of every image model: the pyfunc wrapper ``components.images.pyfunc`` logs.

MLflow stores this file's source (not a pickle) with the model; at load time it rebuilds the
``ImageModel`` from its pickle-free files (``model_files``) and applies a recorded quantization recipe
(``quantize.quantize_at_load``), so the served net is the one that was measured. Never imported by our code.

Input: a DataFrame whose ``image`` column holds, per row, a file path, encoded PNG/JPEG bytes or a pixel
array; other columns (``label``, ``sha256``) are ignored. Output: ``ImageModel.predict_frame`` (``label``,
``probability``, ``proba_<class>``), the columns the tabular multiclass pyfunc answers.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from components.images.model_files import load_image_model
from components.model.quantization import quantize_at_load


class ImagePyfunc(PythonModel):
    def load_context(self, context):
        # Idempotent: a loader that already quantized leaves nothing for quantize_at_load to do.
        self._model = quantize_at_load(load_image_model(context.artifacts["model_dir"]))

    # A DataFrame hint is MLflow's "no type-hint validation": the logged signature checks the input, and
    # without a hint MLflow warns at every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        out = self._model.predict_frame(model_input)
        if hasattr(model_input, "index"):  # row for row with the caller's frame, as the tabular pyfunc answers
            out.index = model_input.index
        return out


mlflow.models.set_model(ImagePyfunc())
