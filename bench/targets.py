"""The targets a run is judged by, under the names the issues give them, and the verdict and table lines."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target row: the figure's dotted key in the output, the bound, and which side of it passes."""

    key: str
    bound: float
    direction: str  # ">=" or "<="
    label: str
    issue: int  # the issue that set this target


TARGETS = [  # issue 25 (Performance III) first, then the earlier rows it left standing
    Target("int8_speedup_vs_bf16", 1.6, ">=", "int8 vs bf16 UNet step", 25),
    Target("int8_latent_rel_error", 0.05, "<=", "int8 latent error vs fp32", 25),
    Target("speedup_vs_plain_fp32", 6.0, ">=", "fastest 20-step path vs plain fp32", 25),
    Target("fewstep_over_default", 0.10, "<=", "few-step image / default image", 25),
    Target("fewstep_image_s", 8.0, "<=", "few-step image (s, quiet day)", 25),
    Target("efficiency", 0.7, ">=", "efficiency of the default path", 25),
    Target("fast.speedup_vs_default", 1.5, ">=", "Fast vs default (or not offered)", 25),
    Target("rss_all_tabs_over_one", 1.15, "<=", "peak RSS all tabs / one (int8, few-step)", 25),
    Target("text2video.lightning_over_default", 0.3, "<=", "Text to video: Lightning / 10-step clip", 25),
    Target("openvino_speedup_vs_torch", 1.5, ">=", "OpenVINO vs torch path", 12),
    Target("floor_ratio", 1.15, "<=", "total / UNet floor", 12),
    Target("tab_switch_ms", 50.0, "<=", "tab switch (ms)", 12),
    Target("scheduler_switch_ms", 10.0, "<=", "scheduler switch (ms)", 12),
    Target("walk_frame_over_image", 1.05, "<=", "walk frame / image", 12),
    Target("latent_rel_error", 0.03, "<=", "latent error vs fp32", 12),
    Target("openvino_warmup_s.from_cache", 10.0, "<=", "OpenVINO warm-up from cache (s)", 12),
]


def lookup(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def verdict(target: Target, value) -> dict:
    """Measured against the bound; Fast that is not offered on the running back end meets its row by the issue's rule."""
    met = value >= target.bound if target.direction == ">=" else value <= target.bound
    return {"value": value, "target": f"{target.direction} {target.bound:g}", "met": bool(met), "issue": target.issue}


def add_verdicts(out: dict) -> None:
    """`out["targets"]`: one verdict per target row whose figure the run has; rows without one say so."""
    verdicts = {}
    for target in TARGETS:
        value = lookup(out, target.key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            verdicts[target.key] = verdict(target, value)
            if target.key == "fast.speedup_vs_default" and lookup(out, "fast.offered_on_default_backend") is False:
                verdicts[target.key].update(met=True, note="Fast is not offered on the default back end")
        else:
            verdicts[target.key] = {"value": None, "target": f"{target.direction} {target.bound:g}", "met": None,
                                    "issue": target.issue, "note": "not measured in this run"}
    out["targets"] = verdicts


def verdict_lines(out: dict) -> list[str]:
    """One line a target: label, key, measured, target, met / MISSED / not measured."""
    lines = []
    for target in TARGETS:
        v = out["targets"].get(target.key) or {}
        if v.get("value") is None:
            shown, mark = "-", "not measured"
        else:
            shown, mark = f"{v['value']:.3f}", "met" if v["met"] else "MISSED"
        lines.append(f"  {target.label:42s} {target.key:36s} {shown:>9s}   target {v.get('target', ''):8s} {mark}")
    return lines


def stage_lines(stages: dict) -> list[str]:
    """One line a path: its seconds split into text encoder, UNet, VAE, watermark, write and other."""
    from bench.stages import STAGES

    lines = []
    for path, split in stages.items():
        if "error" in split:
            lines.append(f"  {path:9s} {split['error']}")
            continue
        parts = ", ".join(f"{name} {split[name]:.2f}" for name in (*STAGES, "other"))
        lines.append(f"  {path:9s} {split['total']:7.2f} s = {parts} ({split.get('backend')})")
    return lines
