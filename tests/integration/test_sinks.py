"""Event sinks against real things: a private mosquitto, a local HTTP server, files, stdout."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facegate import config as cfg
from facegate.errors import ConfigError
from facegate.sinks import SINK_KINDS, JsonlSink, MqttSink, MultiSink, WebhookSink, build_sink
from facegate.sinks.base import EventSink
from facegate.sinks.mqtt import default_instance
from facegate.types import Event
from tests.integration.mosquitto import Mosquitto, free_port, mosquitto_binary

needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")
WAIT_S = 20.0


def event(
    seq: int, kind: str = "unknown", person: str | None = None, visit: str | None = None
) -> Event:
    """An event whose track_id doubles as a sequence number."""
    box = (1.0, 2.0, 30.0, 40.0)
    return Event(kind, "Front Door", 1_700_000_000.0 + seq, seq, box, person, visit_id=visit)


def wait_until(predicate: Callable[[], object], timeout: float = WAIT_S, what: str = "") -> None:
    """Poll until ``predicate()`` is true, or fail the test."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


class Subscriber:
    """A paho test client that records every message on ``topics``."""

    def __init__(self, broker: Mosquitto, topics: tuple[str, ...], **kw: object) -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self._topics = topics
        auth = kw.pop("auth", None)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, **kw)  # type: ignore[arg-type]
        if auth:
            self.client.username_pw_set(*auth)  # type: ignore[misc]
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        wait_until(lambda: self.client.is_connected(), what="subscriber connect")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload.decode(), bool(msg.retain)))

    def payloads(self, topic: str) -> list[str]:
        """Payloads received on ``topic`` so far, in order."""
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def last(self, topic: str) -> str | None:
        """The newest payload on ``topic``."""
        got = self.payloads(topic)
        return got[-1] if got else None

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def event_seqs(sub: Subscriber, topic: str) -> list[int]:
    """Track ids of the events received, first arrivals only (QoS 1 may repeat one)."""
    seqs: list[int] = []
    for payload in sub.payloads(topic):
        seq = json.loads(payload)["track_id"]
        if seq not in seqs:
            seqs.append(seq)
    return seqs


@pytest.fixture()
def broker() -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    with Mosquitto() as b:
        yield b


def mqtt_sink(broker: Mosquitto, **kw: object) -> MqttSink:
    kw.setdefault("instance", "door1")
    return MqttSink(broker.host, broker.port, prefix="fg", camera="Front Door", **kw)  # type: ignore[arg-type]


# Every topic of a device sits under <prefix>/<instance>/ (here fg/door1/).
EVENTS = "fg/door1/front_door/event"


# --- MQTT --------------------------------------------------------------------------------


@needs_mosquitto
def test_events_availability_and_presence(broker: Mosquitto) -> None:
    sub = Subscriber(broker, ("fg/#",))
    with mqtt_sink(broker, people=["Alice"]) as sink:
        wait_until(lambda: sub.last("fg/door1/available") == "online", what="online")
        state = "fg/door1/front_door/person/alice/state"
        wait_until(lambda: sub.last(state) == "OFF", what="initial OFF")
        # The sequence the pipeline emits: a visit opens on one track and, after the tracker
        # lost and found her face, closes on another (the demo: track 2, then track 6).
        sink.emit(event(1, visit="v-stranger"))
        sink.emit(event(2, "recognized", "Alice", "v-alice-1"))
        wait_until(lambda: sub.last(state) == "ON", what="ON")
        sink.emit(event(6, "left", "Alice", "v-alice-1"))
        wait_until(lambda: len(sub.payloads(EVENTS)) == 3, what="3 events")
        wait_until(lambda: sub.last(state) == "OFF", what="OFF after her visit's left")
        sink.emit(event(9, "recognized", "Alice", "v-alice-2"))  # she comes back: a new visit
        wait_until(lambda: sub.last(state) == "ON", what="ON again")
        sink.emit(event(11, "left", "Alice", "v-alice-2"))
        wait_until(lambda: len(sub.payloads(EVENTS)) == 5, what="5 events")
        wait_until(lambda: sub.last(state) == "OFF", what="OFF again")
        sent = event(2, "recognized", "Alice", "v-alice-1").as_dict()
        assert json.loads(sub.payloads(EVENTS)[1]) == sent and sent["visit_id"] == "v-alice-1"
        wait_until(lambda: sink.stats()["delivered"] == 5, what="acks")
    wait_until(lambda: sub.last("fg/door1/available") == "offline", what="offline on close")
    late = Subscriber(broker, ("fg/door1/available",))
    wait_until(lambda: late.messages, what="retained availability")
    assert late.messages == [("fg/door1/available", "offline", True)]
    sub.close()
    late.close()


@needs_mosquitto
def test_discovery_configs_are_retained_and_follow_the_gallery(broker: Mosquitto) -> None:
    with mqtt_sink(broker, people=["Alice", "Bob Smith"]) as sink:
        wait_until(lambda: sink.stats()["connected"], what="connect")
        sub = Subscriber(broker, ("homeassistant/#",))
        wait_until(lambda: len(sub.messages) == 2, what="2 retained configs")
        assert all(retain for _, _, retain in sub.messages)
        topic = "homeassistant/binary_sensor/fg_door1_front_door/bob_smith/config"
        config = json.loads(sub.last(topic) or "{}")
        assert config["device_class"] in ("presence", "occupancy")
        assert (
            config["name"] == "Bob Smith"
            and config["unique_id"] == "fg_door1_front_door_bob_smith_presence"
        )
        assert config["state_topic"] == "fg/door1/front_door/person/bob_smith/state"
        assert (config["payload_on"], config["payload_off"]) == ("ON", "OFF")
        assert config["availability_topic"] == "fg/door1/available"
        assert config["device"]["name"] == "facegate door1 Front Door"
        assert config["device"]["identifiers"] == ["fg_door1_front_door"]
        online = Subscriber(broker, ("fg/door1/available",))
        wait_until(lambda: online.messages, what="retained availability")
        assert online.messages == [("fg/door1/available", "online", True)]
        online.close()
        sink.set_people(["Alice", "Carol"])
        wait_until(lambda: sub.last(topic) == "", what="bob's config removed")
        late = Subscriber(broker, ("homeassistant/#",))
        wait_until(lambda: len(late.messages) == 2, what="retained configs after change")
        assert {t.split("/")[-2] for t, _, _ in late.messages} == {"alice", "carol"}
        sub.close()
        late.close()


@needs_mosquitto
def test_a_person_enrolled_while_the_sink_connects_is_announced(broker: Mosquitto) -> None:
    """The gallery can change after on_connect has read the people to announce but before the
    link counts as up (the daemon sets the people right after starting the sink): the newcomer
    must still get its discovery config, or Home Assistant never shows them."""
    sink = mqtt_sink(broker, people=["Alice"])
    announce, changed = sink._configs, []

    def gallery_changes_inside_the_window(people: object) -> object:
        if not changed:  # on_connect's own call, after it read the people
            changed.append(True)
            sink.set_people(["Alice", "Dave"])
        return announce(people)  # type: ignore[arg-type]

    sink._configs = gallery_changes_inside_the_window  # type: ignore[method-assign]
    with sink:
        wait_until(lambda: sink.stats()["connected"], what="connect")
        sub = Subscriber(broker, ("homeassistant/binary_sensor/#",))
        wait_until(lambda: len(sub.messages) == 2, what="both people's retained configs")
        assert {t.split("/")[-2] for t, _, _ in sub.messages} == {"alice", "dave"}
        assert changed
        sub.close()


LAST_WILL_SCRIPT = """
import sys, time
from facegate.sinks.mqtt import MqttSink
sink = MqttSink("127.0.0.1", int(sys.argv[1]), prefix="fgwill", keepalive=2, discovery=False,
                instance="w1")
sink.start()
while not sink.stats()["connected"]:
    time.sleep(0.01)
print("up", flush=True)
time.sleep(120)
"""


@needs_mosquitto
def test_last_will_says_offline_when_the_process_dies(broker: Mosquitto) -> None:
    sub = Subscriber(broker, ("fgwill/w1/available",))
    cmd = [sys.executable, "-c", LAST_WILL_SCRIPT, str(broker.port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        wait_until(lambda: sub.last("fgwill/w1/available") == "online", what="online")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    wait_until(lambda: sub.last("fgwill/w1/available") == "offline", what="last will")
    sub.close()


@needs_mosquitto
def test_two_devices_on_one_broker_keep_their_own_retained_topics(broker: Mosquitto) -> None:
    """Same camera name, same person, two instances: availability, presence and discovery apart."""
    with (
        mqtt_sink(broker, people=["Alice"]) as door1,
        mqtt_sink(broker, people=["Alice"], instance="door2") as door2,
    ):
        wait_until(lambda: door1.stats()["connected"] and door2.stats()["connected"], what="up")
        door2.emit(event(1, "recognized", "Alice", "v1"))
        wait_until(lambda: door2.stats()["delivered"] == 1, what="door2's event")
    sub = Subscriber(broker, ("fg/#", "homeassistant/#"))
    wait_until(lambda: len(sub.messages) >= 6, what="retained topics of both")
    retained = {t: p for t, p, _ in sub.messages}
    assert retained["fg/door1/available"] == retained["fg/door2/available"] == "offline"
    assert retained["fg/door1/front_door/person/alice/state"] == "OFF"
    assert retained["fg/door2/front_door/person/alice/state"] == "ON"
    ids = {json.loads(p)["unique_id"] for t, p in retained.items() if t.endswith("/config")}
    assert ids == {"fg_door1_front_door_alice_presence", "fg_door2_front_door_alice_presence"}
    sub.close()


def test_default_instance_is_the_host_plus_a_template_config_name() -> None:
    host = default_instance()
    assert host and host == host.lower() and "/" not in host
    assert default_instance("/etc/facegate/config.toml") == host
    assert default_instance("/etc/facegate/Back Door.toml") == f"{host}-back_door"
    assert MqttSink("127.0.0.1", 1, discovery=False).instance == host


def test_a_bad_instance_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="instance"):
        MqttSink("127.0.0.1", 1, instance="a/b")
    with pytest.raises(ConfigError, match="instance"):
        cfg.parse('[[sinks]]\ntype = "mqtt"\nhost = "h"\ninstance = "A B"\n')


@pytest.fixture()
def persistent_broker() -> Iterator[Mosquitto]:
    """Keeps the test subscriber's session across a restart, so it misses nothing."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    with Mosquitto(persistence=True) as b:
        yield b


def persistent_subscriber(broker: Mosquitto) -> Subscriber:
    return Subscriber(broker, (EVENTS,), client_id="fg-test-sub", clean_session=False)


@needs_mosquitto
def test_broker_restart_while_emitting_loses_nothing_and_keeps_order(
    persistent_broker: Mosquitto,
) -> None:
    sub = persistent_subscriber(persistent_broker)
    total = 150
    with mqtt_sink(persistent_broker, queue_size=1000, discovery=False) as sink:
        wait_until(lambda: sink.stats()["connected"], what="connect")

        def emit_all() -> None:
            for i in range(total):
                sink.emit(event(i))
                time.sleep(0.01)

        emitter = threading.Thread(target=emit_all)
        emitter.start()
        wait_until(lambda: len(sub.payloads(EVENTS)) >= 30, what="first events")
        persistent_broker.stop()
        wait_until(lambda: not sink.stats()["connected"], what="the sink seeing the outage")
        persistent_broker.start()
        emitter.join()
        wait_until(lambda: len(event_seqs(sub, EVENTS)) == total, what="all events")
        assert event_seqs(sub, EVENTS) == list(range(total))
        wait_until(lambda: sink.stats()["delivered"] >= total, what="acks")
        stats = sink.stats()
        assert stats["dropped"] == 0 and stats["reconnects"] >= 1
    sub.close()


@needs_mosquitto
def test_offline_queue_drops_the_oldest_beyond_queue_size(persistent_broker: Mosquitto) -> None:
    sub = persistent_subscriber(persistent_broker)
    with mqtt_sink(persistent_broker, queue_size=5, discovery=False) as sink:
        wait_until(lambda: sink.stats()["connected"], what="connect")
        sink.emit(event(0))
        wait_until(lambda: sink.stats()["delivered"] == 1, what="first event")
        persistent_broker.stop()
        wait_until(lambda: not sink.stats()["connected"], what="disconnect noticed")
        for i in range(1, 13):
            sink.emit(event(i))
        assert sink.stats()["queued"] == 5 and sink.stats()["dropped"] == 7
        persistent_broker.start()
        wait_until(lambda: len(event_seqs(sub, EVENTS)) == 6, what="queued events")
        assert event_seqs(sub, EVENTS) == [0, 8, 9, 10, 11, 12]
        wait_until(lambda: sink.stats()["queued"] == 0, what="queue emptied")
    sub.close()


@needs_mosquitto
def test_username_and_password() -> None:
    with Mosquitto(users={"facegate": "s3cret", "tester": "t"}) as b:
        wrong = mqtt_sink(b, username="facegate", password="wrong", discovery=False)
        with wrong:
            wait_until(lambda: wrong.stats()["connect_errors"] >= 1, what="refusal")
            wrong.emit(event(1))  # no exception: queued for a broker that will not have us
            assert wrong.stats()["connected"] == 0 and wrong.stats()["queued"] == 1
        sub = Subscriber(b, (EVENTS,), auth=("tester", "t"))
        with mqtt_sink(b, username="facegate", password="s3cret", discovery=False) as right:
            right.emit(event(2))
            wait_until(lambda: sub.payloads(EVENTS), what="authenticated delivery")
        sub.close()


@needs_mosquitto
def test_sink_started_before_the_broker_delivers_once_it_is_up() -> None:
    port = free_port()
    sink = MqttSink("127.0.0.1", port, prefix="fg", camera="Front Door", discovery=False)
    with sink:
        sink.emit(event(1))
        wait_until(lambda: sink.stats()["connect_errors"] >= 1, what="refused")
        with Mosquitto(port=port):
            wait_until(lambda: sink.stats()["delivered"] == 1, what="delivery")


# --- webhook -----------------------------------------------------------------------------


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that records JSON bodies and answers ``status``."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?token=abc"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def test_webhook_posts_each_event_as_json() -> None:
    target = Receiver()
    with WebhookSink(target.url, headers={"Authorization": "Bearer xyz"}) as sink:
        for i in range(3):
            sink.emit(event(i, "recognized", "Alice"))
        wait_until(lambda: sink.stats()["delivered"] == 3, what="3 deliveries")
    assert target.bodies == [event(i, "recognized", "Alice").as_dict() for i in range(3)]
    assert target.headers[0]["Authorization"] == "Bearer xyz"
    assert target.headers[0]["Content-Type"] == "application/json"
    target.close()


def test_webhook_target_down_then_up_is_delivered_after_retry() -> None:
    port = free_port()
    with WebhookSink(f"http://127.0.0.1:{port}/", retries=8, backoff=0.1) as sink:
        sink.emit(event(1))
        wait_until(lambda: sink.stats()["retries"] >= 1, what="a retry")
        target = Receiver(port)
        wait_until(lambda: sink.stats()["delivered"] == 1, what="delivery after retry")
        assert sink.stats()["failed"] == 0 and target.bodies == [event(1).as_dict()]
    target.close()


def test_webhook_permanently_down_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="facegate.sinks.webhook")
    url = f"http://127.0.0.1:{free_port()}/"
    with WebhookSink(url, retries=2, backoff=0.01, queue_size=50) as sink:
        for i in range(5000):
            sink.emit(event(i))
            assert sink.stats()["queued"] <= 50
        wait_until(lambda: sink.stats()["queued"] == 0, what="queue drained by failures")
        wait_until(lambda: sink.stats()["failed"] + sink.stats()["dropped"] == 5000, what="all")
        stats = sink.stats()
    assert stats["failed"] >= 50 and stats["dropped"] >= 4000 and stats["delivered"] == 0
    assert stats["retries"] == 2 * stats["failed"]  # exactly `retries` retries per event
    failing = [r for r in caplog.records if "is failing" in r.getMessage()]
    assert len(failing) == 1  # once per outage, not per event
    assert "token" not in caplog.text


def test_webhook_client_error_is_not_retried() -> None:
    target = Receiver(status=400)
    with WebhookSink(target.url, retries=3, backoff=0.01) as sink:
        sink.emit(event(1))
        wait_until(lambda: sink.stats()["failed"] == 1, what="failure")
        assert sink.stats()["retries"] == 0 and len(target.bodies) == 1
    target.close()


def test_webhook_close_returns_within_its_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        http_timeout = 120.0  # a close that waited for the request would take this long
        sink = WebhookSink(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=http_timeout)
        sink.start()
        sink.emit(event(1))
        sink.emit(event(2))
        wait_until(lambda: sink.stats()["queued"] == 1, what="event 1 in flight")
        started = time.monotonic()
        sink.close(timeout=1.0)
        assert time.monotonic() - started < http_timeout / 2  # it gave up; no speed judged
        assert sink.stats()["queued"] == 0 and sink.stats()["dropped"] >= 1


# --- JSON lines --------------------------------------------------------------------------


def test_jsonl_file_appends_one_object_per_line_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with JsonlSink(str(path)) as sink:
        sink.emit(event(1, "recognized", "Zoë"))
        assert path.read_text().count("\n") == 1  # flushed per event, not on close
    with JsonlSink(str(path)) as sink:
        sink.emit(event(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        event(1, "recognized", "Zoë").as_dict(),
        event(2).as_dict(),
    ]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_jsonl_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    with JsonlSink("-") as sink:
        sink.emit(event(1))
        sink.emit(event(2))
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["track_id"] for line in out] == [1, 2]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_jsonl_write_error_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="facegate.sinks.jsonl")
    with JsonlSink("/dev/full") as sink:
        for i in range(3):
            sink.emit(event(i))  # must not raise
        assert sink.stats() == {"delivered": 0, "errors": 3}
    # only this sink's records: a webhook worker abandoned by an earlier close(timeout) may
    # still log its own outage while this test runs
    mine = [r for r in caplog.records if r.name == "facegate.sinks.jsonl"]
    assert len([r for r in mine if r.levelno == logging.WARNING]) == 1


def test_jsonl_unopenable_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing" / "events.jsonl")
    with pytest.raises(ConfigError, match="cannot open event log"):
        JsonlSink(path).start()
    sink = JsonlSink(path)  # never started: emit opens lazily and counts the failure
    sink.emit(event(1))
    (tmp_path / "missing").mkdir()
    sink.emit(event(2))  # retried on the next event
    assert sink.stats() == {"delivered": 1, "errors": 1}
    sink.close()


# --- the sink table: --sink specs and [[sinks]] tables build the same sinks -------------


def sink_from_spec(spec: str) -> EventSink:
    return build_sink(cfg.parse_sink(spec), "cam")


def test_sink_specs_build_each_kind(tmp_path: Path) -> None:
    assert isinstance(sink_from_spec("jsonl:-"), JsonlSink)
    jsonl = sink_from_spec(f"jsonl:{tmp_path}/e.jsonl")
    assert isinstance(jsonl, JsonlSink) and jsonl.path == f"{tmp_path}/e.jsonl"
    plain = sink_from_spec("mqtt://user@broker.lan:1884/home")
    assert isinstance(plain, MqttSink) and (plain.host, plain.port) == ("broker.lan", 1884)
    secure = sink_from_spec("mqtts://broker.lan")
    assert isinstance(secure, MqttSink) and secure.port == 8883
    hook = sink_from_spec("https://example.org/hook")
    assert isinstance(hook, WebhookSink) and hook.url == "https://example.org/hook"


def test_every_sink_kind_has_one_table_entry() -> None:
    """Each kind names its table, its --sink schemes and a builder; schemes never overlap."""
    schemes = [s for kind in SINK_KINDS.values() for s in kind.schemes]
    assert len(schemes) == len(set(schemes))
    for name, kind in SINK_KINDS.items():
        assert kind.config.__dataclass_fields__["type"].default == name


@pytest.mark.parametrize(
    "spec",
    [
        "ftp://user:secret@host/x",
        "events.jsonl",
        "",
        "mqtt://host:99999",
        "mqtt:///x",
        "mqtt://u:secret@host",
    ],
)
def test_bad_sink_specs_are_refused_in_one_line(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        sink_from_spec(spec)
    message = str(err.value)
    assert "\n" not in message and "secret" not in message


def test_unknown_sink_spec_lists_the_accepted_forms() -> None:
    with pytest.raises(ConfigError, match=r"jsonl:-.*mqtt.*://.*http"):
        sink_from_spec("kafka://host")


class Broken(EventSink):
    name = "broken"

    def emit(self, event: Event) -> None:
        raise RuntimeError("boom")


def test_multisink_fans_out_and_names_stats(tmp_path: Path) -> None:
    a, b = JsonlSink(str(tmp_path / "a.jsonl")), JsonlSink(str(tmp_path / "b.jsonl"))
    with MultiSink([a, Broken(), b]) as multi:
        multi.emit(event(1))
        multi.emit(event(2))
        stats = multi.stats()
    assert stats["jsonl.delivered"] == 2 and stats["jsonl_2.delivered"] == 2
    assert stats["broken.errors"] == 2
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 2
