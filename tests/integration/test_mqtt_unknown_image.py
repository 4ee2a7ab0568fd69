"""The last unknown face as a Home Assistant MQTT image entity, on a real mosquitto broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facegate.gallery.store import jpeg_crop
from facegate.sinks.mqtt import MqttSink
from facegate.types import Event
from tests.integration.mosquitto import Mosquitto, mosquitto_binary
from tests.integration.test_sinks import wait_until

needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


class RawSubscriber:
    """Records raw payload bytes (a JPEG is no UTF-8 text)."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def last(self, topic: str) -> tuple[bytes, bool] | None:
        """The newest payload on ``topic`` and whether it came retained."""
        with self._lock:
            found = [(p, r) for t, p, r in self.messages if t == topic]
        return found[-1] if found else None

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def broker() -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    with Mosquitto() as b:
        yield b


def unknown(seq: int, face: bytes | None) -> Event:
    box = (1.0, 2.0, 30.0, 40.0)
    return Event("unknown", "Front Door", 1.7e9 + seq, seq, box, cluster_id=seq, face_jpeg=face)


@needs_mosquitto
def test_last_unknown_face_is_an_image_entity(broker: Mosquitto) -> None:
    rng = np.random.default_rng(3)
    faces = [jpeg_crop(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)) for _ in range(2)]
    image = "fg/door1/front_door/unknown/image"
    config_topic = "homeassistant/image/fg_door1_front_door/last_unknown/config"
    sub = RawSubscriber(broker, "#")
    sink = MqttSink(
        broker.host, broker.port, "fg", "Front Door", instance="door1", unknown_image=True
    )
    with sink:
        wait_until(lambda: sub.last(config_topic), what="image discovery")
        wait_until(lambda: sub.last("fg/door1/available"), what="online (retained)")
        config = json.loads(sub.last(config_topic)[0])
        assert config["image_topic"] == image and config["content_type"] == "image/jpeg"
        assert config["unique_id"] == "fg_door1_front_door_last_unknown_face"
        assert config["availability_topic"] == "fg/door1/available"
        assert config["device"]["identifiers"] == ["fg_door1_front_door"]
        sink.emit(unknown(1, faces[0]))
        sink.emit(unknown(2, faces[1]))
        wait_until(lambda: sub.last(image) == (faces[1], False), what="the newest face")
        wait_until(lambda: len([m for m in sub.messages if m[0].endswith("/event")]) == 2)
        event_payloads = [p for t, p, _ in sub.messages if t == "fg/door1/front_door/event"]
        assert all(b"\xff\xd8" not in p for p in event_payloads)  # events carry no pixels
    late = RawSubscriber(broker, image)
    wait_until(lambda: late.last(image), what="retained face")
    assert late.last(image) == (faces[1], True)  # Home Assistant shows it after a restart
    sub.close()
    late.close()


@needs_mosquitto
def test_no_image_without_the_option(broker: Mosquitto) -> None:
    sub = RawSubscriber(broker, "#")
    with MqttSink(broker.host, broker.port, "fg", "Front Door", instance="door1") as sink:
        wait_until(lambda: sub.last("fg/door1/available"), what="online (retained)")
        sink.emit(unknown(1, b"\xff\xd8\xff face"))
        wait_until(lambda: any(t.endswith("/event") for t, _, _ in sub.messages))
    assert not any("image" in t for t, _, _ in sub.messages)
    sub.close()
