"""SageMaker-style training job for the glaucoma screening model."""
