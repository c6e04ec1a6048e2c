"""Prompts: A1111's weighting syntax and encoding, styles.csv, and the face tabs' prompt presets."""
