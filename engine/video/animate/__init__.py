"""Deforum-style animation: 2D and 3D camera moves and video input, every frame made from the one before.

- `schedules`: Deforum's `frame:(value)` schedules and keyframed prompts, evaluated safely;
- `warp`: the 2D affine and 3D depth warps;
- `depth`: the depth-estimation model for 3D;
- `color`: colour coherence (histogram matching to frame 0);
- `video_input`: reading a source video's frames and putting its sound back;
- `request`: the request, its defaults and checks;
- `deforum_settings`: the Deforum extension's settings files;
- `frames`: making each frame, diffused or warped along the camera path;
- `run`: starting, stopping and resuming an animation.
"""
from engine.video.animate.frames import AnimateUpdate  # noqa: F401
from engine.video.animate.request import MAX_FRAMES, AnimateRequest, check_animation  # noqa: F401
from engine.video.animate.run import AnimateResult, animate, read_plan, resume  # noqa: F401
