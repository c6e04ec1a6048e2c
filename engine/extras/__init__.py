"""Extras: finishing a picture after it is made: upscaling and face restoration."""
