"""Which built variants a bundle keeps: facegate.converters.report.decide."""

from __future__ import annotations

from facegate.converters.report import KEEP_MIN_SPEEDUP, VariantReport, decide


def _r(precision: str, mb: float, ms: float, speedup: float | None, ok: bool = True):
    r = VariantReport("onet", "onnx", precision, f"onet.{precision}.onnx", int(mb * 1e6), 1, 1)
    r.latency_ms, r.speedup, r.parity_ok = ms, speedup, ok
    return r


def test_paired_speedup_decides_over_separate_medians() -> None:
    fp32 = _r("fp32", 1.6, 3.0, None)
    # Timed apart, the FP16 file looked 1.3x faster; timed in turn it is the same arithmetic.
    fp16 = _r("fp16", 0.8, 2.3, 1.02)
    int8 = _r("int8", 1.3, 2.3, 1.30)
    decide([fp32, fp16, int8])
    assert fp32.kept and fp32.why == "reference"
    assert not fp16.kept and fp16.why.startswith("no gain (0.98x")
    assert int8.kept and int8.why == "1.30x faster (rule >= 1.15x)"


def test_int8_kept_for_size_only_at_parity_and_half_the_size() -> None:
    fp32 = _r("fp32", 5.2, 12.0, None)
    small = _r("int8", 1.6, 12.5, 0.96)
    decide([fp32, small])
    assert small.kept and small.why == "3.2x smaller"
    fp32, failing = _r("fp32", 5.2, 12.0, None), _r("int8", 1.6, 9.0, 1.3, ok=False)
    decide([fp32, failing])
    assert not failing.kept and failing.why == "fails parity"


def test_without_a_paired_figure_the_medians_are_compared() -> None:
    fp32, fp16 = _r("fp32", 1.6, 3.0, None), _r("fp16", 0.8, 2.0, None)
    decide([fp32, fp16])
    assert fp16.kept and fp16.why == "1.50x faster (rule >= 1.15x)"


def test_the_keep_rule_is_the_documented_15_percent() -> None:
    """docs/models.md: kept when >= 15 % faster than FP32; the code once needed 1/0.85 = 1.18x."""
    assert KEEP_MIN_SPEEDUP == 1.15
    fp32 = _r("fp32", 1.6, 3.0, None)
    on_the_line = _r("int8", 1.3, 2.6, 1.16)
    just_under = _r("fp16", 1.3, 2.6, 1.14)
    decide([fp32, on_the_line, just_under])
    assert on_the_line.kept and on_the_line.why == "1.16x faster (rule >= 1.15x)"
    assert not just_under.kept and just_under.why == "no gain (0.88x time; rule >= 1.15x)"
