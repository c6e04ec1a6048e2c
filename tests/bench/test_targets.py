"""Verdicts: every target row of issue 25 under its own name, the direction of each bound, and rows not measured."""
from bench.targets import TARGETS, add_verdicts, stage_lines, verdict_lines

ISSUE_25 = {"int8_speedup_vs_bf16", "int8_latent_rel_error", "speedup_vs_plain_fp32", "fewstep_over_default",
            "fewstep_image_s", "efficiency", "fast.speedup_vs_default", "rss_all_tabs_over_one",
            "text2video.lightning_over_default"}


def test_every_issue_25_row_has_a_verdict_even_when_not_measured():
    out = {"efficiency": 0.69, "fewstep_over_default": 0.09, "fast": {"speedup_vs_default": 2.0}}
    add_verdicts(out)
    assert ISSUE_25 <= {t.key for t in TARGETS if t.issue == 25}
    assert ISSUE_25 <= set(out["targets"])
    assert out["targets"]["efficiency"]["met"] is False  # >= 0.7
    assert out["targets"]["fewstep_over_default"]["met"] is True  # <= 0.10
    assert out["targets"]["fast.speedup_vs_default"]["met"] is True
    assert out["targets"]["int8_speedup_vs_bf16"]["met"] is None
    lines = verdict_lines(out)
    assert len(lines) == len(TARGETS)
    assert any("efficiency" in line and "MISSED" in line for line in lines)
    assert any("int8_speedup_vs_bf16" in line and "not measured" in line for line in lines)


def test_fast_not_offered_meets_its_row_by_the_issue_rule():
    out = {"fast": {"speedup_vs_default": 0.8, "offered_on_default_backend": False}}
    add_verdicts(out)
    assert out["targets"]["fast.speedup_vs_default"]["met"] is True
    out["fast"]["offered_on_default_backend"] = True
    add_verdicts(out)
    assert out["targets"]["fast.speedup_vs_default"]["met"] is False


def test_stage_lines_name_each_stage_and_the_back_end():
    split = {"text_encoder": 0.1, "unet": 2.0, "vae": 0.5, "watermark": 0.05, "write": 0.02, "other": 0.3,
             "total": 2.97, "backend": "OpenVINO"}
    (line,) = stage_lines({"fewstep": split})
    assert "fewstep" in line and "unet 2.00" in line and "other 0.30" in line and "OpenVINO" in line
    assert "not here" in stage_lines({"int8": {"error": "not here"}})[0]
