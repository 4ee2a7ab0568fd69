"""The daemon config: defaults, every kind of problem located by file:line and key, overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate import config as cfg
from facegate.config import (
    ConfigProblems,
    JsonlSinkConfig,
    MqttSinkConfig,
    WebhookSinkConfig,
    apply_overrides,
    parse,
)
from facegate.errors import ConfigError
from facegate.vision.detect.mtcnn import MTCNNConfig
from facegate.vision.recognizer import DEFAULT_THRESHOLD

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"


def problems(text: str) -> list[str]:
    """The problem lines ``text`` produces (fails when it is valid)."""
    with pytest.raises(ConfigProblems) as info:
        parse(text, "config.toml")
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    return str(info.value).splitlines()


def test_example_file_parses() -> None:
    config = cfg.load(EXAMPLE)
    assert config.camera.name == "front_door"
    assert config.models.threads == 2
    assert config.sinks == (JsonlSinkConfig(path="-"),)


def test_defaults_match_the_measured_and_reference_values() -> None:
    config = cfg.default()
    mtcnn = MTCNNConfig()
    assert config.recognition.threshold == DEFAULT_THRESHOLD
    assert config.detector.min_face_size == mtcnn.min_face_size
    assert config.detector.thresholds == mtcnn.thresholds
    assert config.detector.scale_factor == mtcnn.scale_factor
    assert config.detector.crop == mtcnn.crop == "zero"
    assert config.camera.source is None and config.camera.realtime is None
    assert config.http.host == "127.0.0.1" and config.http.port == 8765
    assert config.sinks == (JsonlSinkConfig(),)
    assert parse("") == config


def test_values_are_converted_to_their_types() -> None:
    config = parse("[camera]\nsource = 0\nmax_fps = 5\n[detector]\nthresholds = [0.5, 0.6, 0.7]")
    assert config.camera.source == "0"
    assert config.camera.max_fps == 5.0 and isinstance(config.camera.max_fps, float)
    assert config.detector.thresholds == (0.5, 0.6, 0.7)


def test_detector_crop_mode_is_a_choice() -> None:
    assert parse('[detector]\ncrop = "clip"').detector.crop == "clip"
    [problem] = problems('[detector]\ncrop = "stretch"')
    assert problem.startswith("config.toml:2: detector.crop:") and "zero" in problem


def test_out_of_range_value_names_file_line_and_key() -> None:
    text = "# comment\n\n[camera]\nname = 'door'\n\n\nmax_fps = -2\n"
    assert problems(text) == ["config.toml:7: camera.max_fps: must be > 0, got -2"]


def test_wrong_type_is_reported() -> None:
    assert problems('[detector]\nscale_factor = "fast"') == [
        "config.toml:2: detector.scale_factor: expected a number, got 'fast'"
    ]
    assert problems("[models]\nthreads = 2.5") == [
        "config.toml:2: models.threads: expected an integer, got 2.5"
    ]
    assert problems("[models]\nflip = 1") == [
        "config.toml:2: models.flip: expected true or false, got 1"
    ]
    assert problems("[models]\nthreads = true") == [
        "config.toml:2: models.threads: expected an integer, got true"
    ]
    assert problems("[tracker]\niou_threshold = nan") == [
        "config.toml:2: tracker.iou_threshold: expected a finite number, got nan"
    ]
    assert problems("camera = 3") == ["config.toml:1: camera: expected a table, got 3"]
    [line] = problems("[camera]\nmax_fps = 1" + "0" * 400)
    assert line.startswith("config.toml:2: camera.max_fps: expected a finite number, got 1000")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[models]\nthreads = 17", "models.threads: must be between 1 and 16, got 17"),
        ("[models]\nbackend = 'tpu'", "one of auto, onnxruntime, litert, got 'tpu'"),
        ("[camera]\nname = 'Front Door'", "lowercase letters, digits, '_' or '-'"),
        ("[camera]\nsource = ' '", "camera.source: must be non-empty, got ' '"),
        ("[detector]\nthresholds = [0.6, 1.0, 0.7]", "item 2 must be in (0, 1), got 1"),
        ("[detector]\nthresholds = [0.6, 0.7]", "expected a list of 3 numbers, got [0.6, 0.7]"),
        ("[detector]\nthresholds = [0.6, 'a', 0.7]", "item 2: expected a number, got 'a'"),
        ("[detector]\nmin_face_size = 11", "must be between 12 and 2000, got 11"),
        ("[recognition]\nthreshold = 1.5", "must be between -1 and 1, got 1.5"),
        ("[service]\nlog_level = 'verbose'", "one of debug, info, warning, error"),
        ("[http]\nport = 0", "http.port: must be between 1 and 65535, got 0"),
    ],
)
def test_each_rule_is_enforced(text: str, expected: str) -> None:
    [line] = problems(text)
    assert line.startswith("config.toml:2: ") and expected in line


def test_unknown_keys_suggest_the_closest_name() -> None:
    text = "[detctor]\nmin_face_size = 40\n\n[camera]\nmax_fsp = 3\n"
    assert problems(text) == [
        "config.toml:1: detctor: unknown key 'detctor' (did you mean 'detector'?)",
        "config.toml:5: camera.max_fsp: unknown key 'max_fsp' (did you mean 'max_fps'?)",
    ]
    [line] = problems("[camera]\nzzz = 1")
    assert line == "config.toml:2: camera.zzz: unknown key 'zzz'"


def test_all_problems_are_collected_in_line_order() -> None:
    text = (
        "[recognition]\nvotes = 0\n"
        "[camera]\nmax_fps = 0\ndetect_every = 'x'\n"
        "[[sinks]]\ntype = 'kafka'\n"
        "[[sinks]]\ntype = 'mqtt'\nport = 99999\n"
    )
    lines = problems(text)
    assert [line.split(":")[1] for line in lines] == ["2", "4", "5", "7", "8", "10"]
    assert "sinks[1].host: required" in lines[4]
    assert "sinks[0].type: must be one of jsonl, mqtt, webhook, got 'kafka'" in lines[3]
    assert "sinks[1].port: must be between 1 and 65535, got 99999" in lines[5]


def test_cross_key_problems() -> None:
    assert problems("[recognition]\nmax_embeds_per_track = 4\nvotes = 5\n") == [
        "config.toml:1: recognition.unknown_after: must be <= max_embeds_per_track (4), got 5",
        "config.toml:3: recognition.votes: must be <= max_embeds_per_track (4), got 5",
    ]
    [line] = problems("[http]\nhost = '0.0.0.0'")
    assert line.startswith("config.toml:1: http.token_file: required when host is not loopback")
    assert parse("[http]\nhost = '0.0.0.0'\ntoken_file = '/etc/t'").http.token_file == "/etc/t"
    assert parse("[http]\nhost = '::1'").http.host == "::1"
    [line] = problems("[[sinks]]\ntype = 'mqtt'\nhost = 'b'\nca_file = '/ca.pem'\n")
    assert line == "config.toml:4: sinks[0].ca_file: needs tls = true"


@pytest.mark.parametrize("key", ["password", "token"])
def test_secrets_are_refused(key: str) -> None:
    text = f"[[sinks]]\ntype = 'jsonl'\n\n[[sinks]]\ntype = 'mqtt'\nhost = 'b'\n{key} = 'hunter2'\n"
    [line] = problems(text)
    assert line.startswith(f"config.toml:7: sinks[1].{key}: never put a secret in the config")
    assert "_file" in line and "LoadCredential" in line and "hunter2" not in line


def test_webhook_url_with_password_is_refused_without_echoing_it() -> None:
    [line] = problems("[[sinks]]\ntype = 'webhook'\nurl = 'https://u:hunter2@example.com/'\n")
    assert "sinks[0].url: must not contain user:password@" in line and "hunter2" not in line
    [line] = problems("[[sinks]]\ntype = 'webhook'\nurl = 'http://[bad'\n")
    assert line.startswith("config.toml:3: sinks[0].url: is not a valid URL")


def test_sinks_are_discriminated_by_type() -> None:
    text = (
        "[[sinks]]\ntype = 'jsonl'\npath = '/var/log/f.jsonl'\n"
        "[[sinks]]\ntype = 'mqtt'\nhost = 'ha.local'\nusername = 'fg'\n"
        "password_file = '/etc/facegate/mqtt'\n"
        "[[sinks]]\ntype = 'webhook'\nurl = 'https://example.com/hook'\nretries = 0\n"
    )
    jsonl, mqtt, hook = parse(text).sinks
    assert jsonl == JsonlSinkConfig(path="/var/log/f.jsonl")
    assert isinstance(mqtt, MqttSinkConfig) and mqtt.port == 1883 and mqtt.discovery
    assert isinstance(hook, WebhookSinkConfig) and hook.retries == 0
    assert parse("sinks = []").sinks == ()
    [line] = problems("[[sinks]]\npath = '-'")
    assert line == "config.toml:1: sinks[0].type: must be one of jsonl, mqtt, webhook, missing"
    [line] = problems("[[sinks]]\ntype = 'jsonl'\nhost = 'x'")
    assert line == "config.toml:3: sinks[0].host: unknown key 'host'"
    [line] = problems("[sinks]\ntype = 'jsonl'")
    assert line == "config.toml:1: sinks: expected an array of tables ([[sinks]])"


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.toml", tmp_path):
        with pytest.raises(ConfigError) as info:
            cfg.load(path)
        assert str(info.value).startswith(f"{path}: cannot read: ")
        assert "\n" not in str(info.value)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        cfg.load(binary)


def test_toml_syntax_error_is_one_line_with_tomllibs_position() -> None:
    with pytest.raises(ConfigError) as info:
        parse("[camera]\nname = \n", "config.toml")
    assert not isinstance(info.value, ConfigProblems)
    message = str(info.value)
    assert message.startswith("config.toml: invalid TOML: ") and "line 2" in message
    assert "\n" not in message


def test_overrides_apply_and_validate() -> None:
    base = parse("[camera]\nsource = '/dev/video0'\n[[sinks]]\ntype = 'jsonl'\npath = '/x'\n")
    config = apply_overrides(base, source="rtsp://cam/1", sinks=["jsonl:-"], max_fps=5, threads=2)
    assert config.camera.source == "rtsp://cam/1" and config.camera.max_fps == 5.0
    assert config.models.threads == 2 and config.sinks == (JsonlSinkConfig(path="-"),)
    assert apply_overrides(base) == base
    with pytest.raises(ConfigProblems) as info:
        apply_overrides(base, max_fps=-1, backend="tpu")
    assert str(info.value).splitlines() == [
        "--max-fps: camera.max_fps: must be > 0, got -1",
        "--backend: models.backend: must be one of auto, onnxruntime, litert, got 'tpu'",
    ]


def test_sink_specs() -> None:
    assert cfg.parse_sink("jsonl:-") == JsonlSinkConfig(path="-")
    assert cfg.parse_sink("jsonl:/tmp/e.jsonl") == JsonlSinkConfig(path="/tmp/e.jsonl")
    mqtt = cfg.parse_sink("mqtt://fg@broker.lan:1884/home/door")
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.prefix, mqtt.tls) == (
        "broker.lan",
        1884,
        "fg",
        "home/door",
        False,
    )
    assert cfg.parse_sink("mqtts://broker").port == 8883
    assert cfg.parse_sink("mqtt://broker").port == 1883
    assert cfg.parse_sink("https://example.com/h") == WebhookSinkConfig(url="https://example.com/h")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mqtt://fg:hunter2@broker", "password_file"),
        ("kafka://x", "expected jsonl:PATH"),
        ("mqtt://broker:99999", "not a valid URL (Port out of range 0-65535)"),
        ("mqtt://[broker", "not a valid URL"),
        ("mqtt://", "sinks[0].host: must be non-empty"),
        ("jsonl:", "sinks[0].path: must be non-empty"),
    ],
)
def test_bad_sink_specs_are_refused(spec: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(cfg.default(), sinks=[spec])
    assert expected in str(info.value) and "hunter2" not in str(info.value)
    assert str(info.value).startswith("--sink")


def test_resolve_paths(tmp_path: Path) -> None:
    config = cfg.resolve_paths(parse("[gallery]\npath = '/g.db'"), tmp_path)
    assert config.gallery.path == "/g.db"
    assert config.snapshots.dir == str(tmp_path / "snapshots")


def test_explain_describes_every_key() -> None:
    rows = cfg.explain()
    keys = {row[0] for row in rows}
    assert {"camera.max_fps", "sinks[type=mqtt].password_file", "http.token_file"} <= keys
    assert all(row[1] and row[4] for row in rows)
    by_key = {row[0]: row for row in rows}
    assert by_key["models.threads"][:4] == ("models.threads", "integer", "1", "between 1 and 16")
    assert by_key["cameras[].name"][1:3] == ("string", "'camera'")


# --- property tests -------------------------------------------------------------------------

NAMES = ["camera", "models", "detector", "sinks", "http", "source", "max_fps", "type", "mqtt",
         "host", "thresholds", "threads", "password", "url", "port", "name"]  # fmt: skip


def toml(value: object) -> str:
    """A TOML value (inline form)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else str(value)


def document(data: dict[str, object]) -> str:
    """A TOML document: tables as [headers], lists of tables as [[headers]], the rest inline."""
    lines = [f"{json.dumps(k)} = {toml(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


keys = st.sampled_from(NAMES) | st.text(min_size=1, max_size=8)
scalars = (
    st.booleans()
    | st.integers()
    | st.sampled_from([2**64, -(10**400)])
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["mqtt", "jsonl", "webhook", "0", "http://x", "auto", "0.0.0.0"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values | st.dictionaries(keys, values, max_size=6), max_size=6))
def test_random_documents_fail_only_with_config_error(data: dict[str, object]) -> None:
    try:
        parse(document(data), "random.toml")
    except ConfigError as err:
        assert str(err)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_fails_only_with_config_error(text: str) -> None:
    try:
        parse(text)
    except ConfigError as err:
        assert str(err)


# --- facegate check-config ------------------------------------------------------------------


def check_config(*argv: str) -> int:
    """Run ``facegate check-config ARGV`` in-process."""
    import argparse

    from facegate.cli import check_config as command

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["check-config", *argv])
    return args.func(args)


def test_check_config_prints_every_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nmax_fps = -2\n[models]\nthreads = 'x'\n")
    assert check_config(str(path)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:2: camera.max_fps: must be > 0, got -2",
        f"{path}:4: models.threads: expected an integer, got 'x'",
    ]
    assert check_config(str(path), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"][0] == {
        "source": str(path),
        "line": 2,
        "key": "camera.max_fps",
        "message": "must be > 0, got -2",
    }
    assert check_config(str(tmp_path / "missing.toml")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_check_config_summary_hides_url_passwords(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nsource = 'rtsp://admin:hunter2@cam/1'\n")
    assert check_config(str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok\n") and "rtsp://***@cam/1" in out and "hunter2" not in out
    assert check_config(str(path), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["config"]["camera"]["source"] == "rtsp://***@cam/1"


def test_check_config_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config("--explain", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    port = next(row for row in rows if row["key"] == "http.port")
    assert (port["type"], port["default"], port["values"]) == (
        "integer",
        "8765",
        "between 1 and 65535",
    )
    assert check_config("--explain") == 0
    assert "camera.max_fps" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs a FILE"):
        check_config()


def test_check_config_hides_webhook_query_and_user_info(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    url = "https://hooks.example/e?token=hunter2&x=1"
    path.write_text(f'[[sinks]]\ntype = "webhook"\nurl = "{url}"\n')
    assert check_config(str(path)) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "webhook https://hooks.example/e?token=***&x=***" in out
    assert check_config(str(path), "--json") == 0
    report = capsys.readouterr().out
    assert "hunter2" not in report and json.loads(report)["config"]["sinks"][0]["url"].endswith(
        "?token=***&x=***"
    )


def test_check_config_says_which_models_run_fp32(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The built bundle has no FP16 files: check-config (and the daemon) say so."""
    path = tmp_path / "config.toml"
    path.write_text('[models]\nbackend = "onnxruntime"\nprecision = "fp16"\n')
    assert check_config(str(path)) == 0
    err = capsys.readouterr().err
    assert "warning: models.precision = fp16" in err
    assert "pnet, rnet, onet, embedder; all four models run fp32" in err
    assert check_config(str(path), "--json") == 0
    assert "run fp32" in json.loads(capsys.readouterr().out)["warnings"][0]
