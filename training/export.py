"""Export: a .keras file for retraining, a TFLite file for serving.

The TFLite graph has one signature with input `image` (N, S, S, 3) float32
in [0, 1] and two outputs (freezing loses their names; serving tells them
apart by rank):
- `probability` (N,): P(glaucoma);
- `cam` (N, h, w): the class-activation map, the dense unit's weights applied
  to the last convolution's features, so that mean(cam) + bias is the logit.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from training.network import OUTPUT_LAYER, feature_map



def serving_module(model: keras.Model) -> tf.Module:
    """A tf.Module that owns the model's variables and the `serving` signature."""
    features_model = keras.Model(model.inputs, [model.get_layer(OUTPUT_LAYER).output, feature_map(model)])
    dense = model.get_layer(OUTPUT_LAYER)
    size = model.input_shape[1]
    module = tf.Module()
    module.features_model = features_model

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])
    def serving(image: tf.Tensor) -> dict[str, tf.Tensor]:
        probability, features = features_model(image, training=False)
        cam = tf.tensordot(features, dense.kernel[:, 0], axes=[[3], [0]])
        return {"probability": probability[:, 0], "cam": cam}

    module.serving = serving
    return module


def export_tflite(model: keras.Model, path: Path) -> Path:
    """Float32 TFLite (no quantisation: serving must match the .keras file to 1e-4).

    The variables are frozen into constants first: converting Keras 3's
    resource variables directly gave a TFLite file with uninitialised weights.
    """
    module = serving_module(model)
    frozen = convert_variables_to_constants_v2(module.serving.get_concrete_function())
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([frozen], module).convert()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flatbuffer)
    return path


def keras_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return model.predict(images, batch_size=batch_size, verbose=0)[:, 0]
