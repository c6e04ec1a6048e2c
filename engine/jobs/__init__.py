"""How a job runs: the shared generation slots, where it runs (here or on Ray), and its ZeroGPU time."""
