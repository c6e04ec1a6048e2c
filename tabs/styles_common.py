"""The image tabs' Styles picker: entries of an A1111 styles.csv, chosen by name and applied when a run starts."""
from __future__ import annotations

import gradio as gr

from engine.text.styles import REPO_ROOT, active_styles
from tabs.session import user_errors

NO_STYLES = "No styles found: put an A1111 styles.csv in the app folder, or start the app with --styles PATH."


def style_picker(task: str, prompt: gr.Textbox, negative: gr.Textbox) -> gr.Dropdown:
    """A multiselect of the styles (#<task>-styles), applied to the prompts at Generate as A1111 does.

    Beside it, a button writes the chosen styles into the prompt boxes (A1111's brush) and one reads the file
    again after an edit.
    """
    names, note = _names()
    with gr.Row(equal_height=True):
        picker = gr.Dropdown(names, value=[], multiselect=True, allow_custom_value=True,  # the file may change
                             label="Styles (applied when you generate)",
                             info=note, elem_id=f"{task}-styles", scale=5)
        apply = gr.Button("Apply to prompt", size="sm", scale=1, min_width=90, elem_id=f"{task}-styles-apply")
        reload = gr.Button("Reload styles", size="sm", scale=1, min_width=90, elem_id=f"{task}-styles-reload")
    apply.click(apply_to_prompt, inputs=[picker, prompt, negative], outputs=[prompt, negative, picker],
                api_name=False, queue=False, show_progress="hidden")
    reload.click(reload_choices, inputs=picker, outputs=picker, api_name=False, queue=False,
                 show_progress="hidden")
    return picker


def styled(names: list[str] | None, prompt: str, negative_prompt: str) -> tuple[str, str]:
    """The prompts a run uses: the chosen styles applied (an unknown name or a broken file gets a sentence)."""
    with user_errors():
        return active_styles().apply(names, prompt or "", negative_prompt or "")


def apply_to_prompt(names, prompt, negative_prompt):
    """Write the chosen styles into the prompt boxes and clear the choice, so they are not applied twice."""
    if not names:  # nothing chosen: nothing to write
        return gr.skip(), gr.skip(), gr.skip()
    prompt, negative_prompt = styled(names, prompt, negative_prompt)
    return prompt, negative_prompt, []


def reload_choices(chosen):
    names, note = _names()
    return gr.Dropdown(choices=names, value=[n for n in chosen or [] if n in names], info=note)


def _names() -> tuple[list[str], str]:
    """The style names, and a line saying where they come from (or why there are none)."""
    style_file = active_styles()
    try:
        names = style_file.names()
    except ValueError as exc:
        return [], str(exc)
    path = style_file.path.resolve()
    shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path.name  # no server paths
    return names, f"From {shown}." if names else NO_STYLES
