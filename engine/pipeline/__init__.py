"""Loading and holding the model: where it comes from, its components, schedulers, device and the shared manager."""
