"""Training-time augmentation.

Geometric, as in the seeds: flips (left and right eyes mirror), rotation,
shifts, zoom. Photometric, stronger than the seeds because other cameras
differ mostly there: per-channel colour
gains (white balance), brightness, contrast, gamma, saturation, blur and
sensor noise. The model then normalises grey level per image, so these mostly
teach it to ignore exposure and colour cast rather than to rely on them.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def geometric_layers(seed: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomRotation(0.02, fill_mode="reflect", seed=seed + 1),  # +-7 deg
            keras.layers.RandomTranslation(0.04, 0.04, fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomZoom((-0.06, 0.06), fill_mode="reflect", seed=seed + 3),
        ],
        name="geometric_augmentation",
    )


def photometric(images: tf.Tensor, probability: float = 0.5) -> tf.Tensor:
    """Random colour cast, exposure, contrast, gamma, saturation, blur, noise, on a
    random `probability` share of the images (the rest stay as photographed).

    Op-level randomness: reproducible under keras.utils.set_random_seed.
    """
    n = tf.shape(images)[0]

    def per_image(lo: float, hi: float, channels: int = 1) -> tf.Tensor:
        return tf.random.uniform([n, 1, 1, channels], lo, hi)

    x = images * tf.exp(per_image(-0.2, 0.2, channels=3))  # white balance / colour cast
    x = x + per_image(-0.1, 0.1)  # exposure
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = tf.clip_by_value((x - mean) * per_image(0.7, 1.35) + mean, 0.0, 1.0)  # contrast
    x = tf.pow(x + 1e-6, tf.exp(per_image(-0.3, 0.3)))  # gamma
    grey = tf.reduce_mean(x, axis=3, keepdims=True)
    x = grey + (x - grey) * per_image(0.5, 1.3)  # saturation
    blurred = tf.nn.avg_pool2d(x, ksize=3, strides=1, padding="SAME")
    x = x + (blurred - x) * tf.cast(per_image(0.0, 1.0) > 0.7, tf.float32)  # soft focus
    x = x + tf.random.normal(tf.shape(x)) * per_image(0.0, 0.01)  # sensor noise
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.where(per_image(0.0, 1.0) < probability, x, images)


def gaussian_blur(images: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Separable Gaussian blur, one sigma (pixels) for the batch."""
    radius = 4
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(offsets / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = 3
    horizontal = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    vertical = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    # Reflect at the borders: zero padding would darken every edge.
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(padded, horizontal, strides=[1, 1, 1, 1], padding="VALID")
    return tf.nn.depthwise_conv2d(x, vertical, strides=[1, 1, 1, 1], padding="VALID")


def acquisition(images: tf.Tensor, probability: float = 0.3) -> tf.Tensor:
    """What another camera, export path or cropping habit does to a photograph:
    defocus (Gaussian blur, sigma 0.5-2 px), JPEG recompression (quality 25-95)
    and a looser crop (the image shrunk to 75-100 % on a black border), each on a
    random `probability` share of the images."""
    n = tf.shape(images)[0]
    size = tf.shape(images)[1]

    def chosen() -> tf.Tensor:
        return tf.random.uniform([n, 1, 1, 1]) < probability

    x = tf.where(chosen(), gaussian_blur(images, tf.random.uniform([], 0.5, 2.0)), images)
    compressed = tf.map_fn(lambda image: tf.image.random_jpeg_quality(image, 25, 95), x)
    x = tf.where(chosen(), tf.reshape(compressed, tf.shape(x)), x)
    scale = tf.random.uniform([], 0.75, 1.0)
    inner = tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32)
    shrunk = tf.image.resize_with_crop_or_pad(tf.image.resize(x, [inner, inner]), size, size)
    return tf.where(chosen(), shrunk, x)


def make_augmenter(seed: int, geometric_probability: float = 0.5, photometric_probability: float = 0.5,
                   acquisition_probability: float = 0.0):
    """Flip every image at random; warp and re-light a random share of them.

    Measured on ACRIMA val with the frozen trunk (linear probe, one augmented
    copy): flips cost nothing, photometric changes -0.01 AUC, strong warps
    (+-14 deg, 10 % zoom) -0.03; hence mild warps on half of the images.
    Acquisition changes (blur, JPEG, looser crops) are off by default: with 0.3
    they raised test specificity under blur from 0.24 to 0.50 but cost 0.016 AUC
    and 3.4 points of sensitivity (models/MODEL_CARD.md).
    """
    flip = keras.layers.RandomFlip("horizontal", seed=seed)
    geometric = geometric_layers(seed)

    def augment(images: tf.Tensor) -> tf.Tensor:
        flipped = flip(images, training=True)
        warped = geometric(flipped, training=True)
        chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < geometric_probability
        relit = photometric(tf.where(chosen, warped, flipped), photometric_probability)
        return acquisition(relit, acquisition_probability) if acquisition_probability > 0 else relit

    return augment
