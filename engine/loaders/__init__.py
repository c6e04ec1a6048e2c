"""LoRAs, textual-inversion embeddings and few-step LoRAs found in the user's folders, applied per request."""
