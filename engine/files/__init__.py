"""Files in and out: user images read safely, the output folder, and A1111's PNG info."""
