"""Glaucoma screening: the serving logic, free of AWS handler glue."""
