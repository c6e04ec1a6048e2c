"""One module per tab: handlers turn widget values into one engine call; no diffusion code lives here."""
