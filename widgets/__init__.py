"""Gradio components the tabs share that change how a component behaves, kept out of tabs/ with their generated stubs."""
