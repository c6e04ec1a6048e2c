"""HTTP serving around the Gradio app: the REST API and its error handling."""
