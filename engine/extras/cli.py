"""`python -m engine extras`: restore faces and upscale one picture with a model or Lanczos, keeping its PNG info."""
from __future__ import annotations

import re
from pathlib import Path


def add_parser(jobs) -> None:
    p = jobs.add_parser("extras", help="upscale a picture with an upscaler model or Lanczos")
    p.add_argument("--image", required=True, help="the picture to upscale (PNG, JPEG or WebP)")
    p.add_argument("--upscale", type=float, default=2.0, help="factor, 1 to 8 (default 2)")
    p.add_argument("--to", metavar="WIDTHxHEIGHT", help="an exact size instead of --upscale, such as 2048x1536")
    p.add_argument("--upscaler", default="lanczos",
                   help="lanczos, a model in weights/ESRGAN, weights/RealESRGAN or weights/SwinIR by name or stem, "
                        "or a model file's path")
    p.add_argument("--restore-faces", metavar="NAME",
                   help="restore faces first with GFPGAN, RestoreFormer or CodeFormer (weights/GFPGAN, weights/Codeformer)")
    p.add_argument("--visibility", type=float, default=1.0, help="how much of the restored faces shows, 0 to 1")
    p.add_argument("--out", required=True, help="PNG to write")


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*", text or "")
    if not match:
        raise ValueError(f"Give --to as WIDTHxHEIGHT, such as 2048x1536, not {text[:20]!r}.")
    return int(match[1]), int(match[2])


def run(args, check_writable, weights_dir: Path) -> int:
    from engine.extras.request import ExtrasRequest
    from engine.extras.run import open_image, run_extras
    from engine.files import pnginfo

    out = Path(args.out)
    check_writable(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"Save to a file ending in .png, not {out.name}.")
    path = Path(args.image)
    if not path.is_file():
        raise ValueError(f"{path} was not found; check the path and try again.")
    req = ExtrasRequest(open_image(path), upscale_by=args.upscale,
                        upscale_to=parse_size(args.to) if args.to else None, upscaler=args.upscaler,
                        restore_faces=args.restore_faces, visibility=args.visibility)
    result = run_extras(req, weights_dir, allow_path=True)
    pnginfo.save_png(result.image, out, result.parameters)
    print(out)
    return 0
