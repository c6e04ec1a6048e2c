"""The Downloads accordion: few-step LoRAs, TAESD and motion adapters fetched by hub id into weights/, with progress."""
from __future__ import annotations

import gradio as gr

from engine.files.downloads import Downloads, DownloadStopped, Progress, for_manager
from engine.jobs.gate import Gate
from tabs.running import progress_bar, run_buttons, stream, wire_run, wire_stop
from tabs.session import SessionControl, user_error

TASK = "downloads"
INTRO = ("Parts fetched from the Hugging Face hub into `weights/`: few-step LoRAs for Few-step mode (LoRA folder), "
         "TAESD for live previews and Fast decode (`weights/taesd`), motion adapters for Text to video "
         "(`weights/motion`). A part already in the Hugging Face cache is copied from there, without network.")


def choices(downloads: Downloads) -> list[tuple[str, str]]:
    """Each part with its state: present, or available to download."""
    return [(f"{p.label}: {'present' if downloads.present(p) else 'available to download'}", p.name)
            for p in downloads.parts]


def describe(update: Progress):
    """Progress text for a download: which file, and how many MB of how many."""
    size = f"{update.done / 1e6:.1f} of {update.total / 1e6:.1f} MB" if update.total else "starting"
    return update.fraction, f"{update.what}: {size}", None


def build(manager) -> None:
    """The accordion under the model bar; one download at a time, outside the generating queue."""
    downloads = for_manager(manager)
    gate = Gate(1, 8)

    # 1. handlers
    def download(name, control, progress=gr.Progress()):
        if not name:
            raise user_error("Choose a part to download.")

        def job(on_update, ctl):
            try:
                return downloads.download(name, on_update, ctl)
            except DownloadStopped:
                return None

        saved = None
        for _, saved in stream(job, control, progress, gate, describe):
            pass
        part = downloads.find(name)
        note = (f"Stopped: {part.name} was not saved." if saved is None else
                f"{part.name} is in {downloads.where(part)}: {', '.join(p.name for p in saved)}.")
        return gr.Dropdown(choices=choices(downloads), value=name), note

    # 2. layout
    with gr.Accordion("Downloads: few-step LoRAs, TAESD, motion adapters", open=False, elem_id=TASK):
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            part = gr.Dropdown(choices(downloads), value=None, label="Part", elem_id=f"{TASK}-part", scale=4)
            with gr.Column(scale=1, min_width=140):
                run, stop = run_buttons(TASK, "Download")
        bar = progress_bar(TASK)
        note = gr.Markdown(elem_id=f"{TASK}-note")
        control = gr.State(SessionControl())

    # 3. wiring
    wire_run(run.click, download, inputs=[part, control], outputs=[part, note], api_name="download", control=control,
             stop=stop, bar=bar, concurrency_id="downloads", concurrency_limit=1)
    wire_stop(stop, control, "stop_download")
    part.focus(lambda: gr.Dropdown(choices=choices(downloads)), outputs=part, api_name=False, queue=False,
               show_progress="hidden")
