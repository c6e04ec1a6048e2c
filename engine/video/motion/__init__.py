"""Motion models: AnimateDiff text to video over the loaded SD 1.5 model.

- `adapter`: where the motion adapter comes from (weights/, the hub, or tiny) and loading it once per model;
- `unet`: a motion UNet whose 2D layers are the model's own tensors and whose temporal layers are the adapter's;
- `lightning`: AnimateDiff-Lightning adapters told by name, with the scheduler, steps and CFG they were made for;
- `decoding`: the VAE or TAESD (Fast decode) in bounded chunks, TAESD's live preview, each frame's PNG info;
- `resume`: each step's latents and scheduler state saved, and a pipeline that continues from them;
- `text2video`: the request, its checks, the time estimate, making a clip and resuming one;
- `cli`: `python -m engine text2video`.
"""
from engine.video.motion.text2video import (  # noqa: F401
    MAX_FRAMES,
    MIN_FRAMES,
    Text2VideoRequest,
    Text2VideoResult,
    Text2VideoUpdate,
    check_text2video,
    text_to_video,
)
