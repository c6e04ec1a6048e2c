"""ControlNet: the control maps (preprocessors and their annotator weights), the control models and their pipelines."""
