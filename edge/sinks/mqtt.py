"""MQTT sink: events, per-person presence and Home Assistant discovery, queued while offline.

Topics (``instance`` names this device, ``cam`` is the camera name made topic-safe, ``slug`` the
person's name likewise). Everything sits under ``<prefix>/<instance>/``, so several devices share
one broker (or a bridged central one) without overwriting each other's retained topics:

- ``<prefix>/<instance>/available``: "online" / "offline", retained; "offline" is also the will
- ``<prefix>/<instance>/<cam>/event``: every event as JSON, QoS 1, not retained
- ``<prefix>/<instance>/<cam>/person/<slug>/state``: "ON" / "OFF", retained (presence: ON while
  the person has an open visit, from its ``recognized`` to its ``left``, matched by ``visit_id``)
- ``<discovery_prefix>/binary_sensor/<prefix>_<instance>_<cam>/<slug>/config``: Home Assistant
  discovery; unique_id and device identifiers carry the instance too
- ``<prefix>/<instance>/<cam>/unknown/image``: the last unknown face, a 112x112 JPEG, retained
  (with ``unknown_image``), and its Home Assistant ``image`` entity at
  ``<discovery_prefix>/image/<prefix>_<instance>_<cam>/last_unknown/config``
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from facegate import __version__
from facegate.config.fields import opt, show
from facegate.config.secrets import read_secret
from facegate.errors import ConfigError
from facegate.host.instance import default_instance
from facegate.sinks.base import EventSink, SinkKind
from facegate.types import Event

log = logging.getLogger(__name__)

QOS = 1  # at-least-once: the broker acknowledges every event, so "delivered" means delivered
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
MAX_INFLIGHT = (
    20  # messages handed to paho and not yet acknowledged (paho's own queue is unbounded)
)
MQTT_PORT, MQTTS_PORT = 1883, 8883
ONLINE, OFFLINE = "online", "offline"
ON, OFF = "ON", "OFF"


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSinkConfig:
    """[[sinks]] type = "mqtt": events to an MQTT broker, with Home Assistant discovery."""

    type: Literal["mqtt"] = opt("mqtt", "sink type")
    host: str = opt(MISSING, "broker host name or address", "text")
    port: int = opt(1883, "broker port", "1..65535")
    prefix: str = opt("facegate", "topic prefix", "topic")
    instance: str | None = opt(
        None,
        "this device's name in topics and Home Assistant ids (unset: the host name, plus NAME"
        " for a config file NAME.toml as facegate@NAME uses)",
        "slug",
    )
    username: str | None = opt(None, "broker user name")
    password_file: str | None = opt(None, "file holding the broker password")
    tls: bool = opt(False, "connect with TLS")
    ca_file: str | None = opt(None, "CA certificate for TLS (unset: the system's)")
    discovery: bool = opt(True, "publish Home Assistant MQTT discovery")
    discovery_prefix: str = opt("homeassistant", "Home Assistant discovery prefix", "topic")
    queue_size: int = opt(1000, "events held while the broker is away (oldest dropped)", ">=1")
    unknown_image: bool = opt(
        True, "publish the last unknown face (JPEG, retained) as a Home Assistant image entity"
    )

    def check(self) -> list[tuple[str, str]]:
        """Problems between keys: (key, message)."""
        found = []
        if self.ca_file and not self.tls:
            found.append(("ca_file", "needs tls = true"))
        if self.password_file and not self.username:
            found.append(("password_file", "needs username"))
        return found


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: str | bytes
    retain: bool = False
    event: bool = False  # counted as one delivered event once the broker acknowledges it


def with_instance(sinks: Iterable[object], config_path: str | Path | None) -> tuple[object, ...]:
    """``sinks`` with every MQTT sink's unset instance derived from the host and config file."""
    return tuple(
        replace(s, instance=default_instance(config_path))
        if isinstance(s, MqttSinkConfig) and s.instance is None
        else s
        for s in sinks
    )


def slugify(name: str) -> str:
    """A topic- and id-safe ASCII slug ("José Díaz" -> "jose_diaz"); a hash if nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    return slug or "p_" + hashlib.sha256(name.encode()).hexdigest()[:10]


class MqttSink(EventSink):
    """Publishes events to an MQTT broker; holds up to ``queue_size`` events while disconnected."""

    name = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        prefix: str = "facegate",
        camera: str = "camera",
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        tls_insecure: bool = False,
        client_id: str | None = None,
        keepalive: int = 30,
        queue_size: int = 1000,
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        people: Sequence[str] = (),
        instance: str | None = None,
        unknown_image: bool = False,
    ) -> None:
        prefix, discovery_prefix = prefix.strip("/"), discovery_prefix.strip("/")
        instance = instance or default_instance()
        if any(c in instance for c in "/+#") or not instance.strip():
            raise ConfigError(f"bad MQTT instance {instance!r}: no '/', '+' or '#', not empty")
        if not prefix or any(c in prefix + discovery_prefix for c in "+#"):
            raise ConfigError(f"bad MQTT topic prefix {prefix!r}: no '+' or '#', not empty")
        if queue_size < 1 or keepalive < 1:
            raise ConfigError("MQTT queue_size and keepalive must be at least 1")
        self.host, self.port, self.keepalive, self.queue_size = host, port, keepalive, queue_size
        self.discovery = discovery
        self._camera, self._cam = camera, slugify(camera)
        self._prefix, self._discovery_prefix = prefix, discovery_prefix
        self.instance = instance
        self._root = f"{prefix}/{instance}"  # this device's topics
        self._node = f"{slugify(prefix)}_{slugify(instance)}_{self._cam}"  # its HA device id
        self._avail = f"{self._root}/available"
        self._event_topic = f"{self._root}/{self._cam}/event"
        self.unknown_image = unknown_image
        self.image_topic = f"{self._root}/{self._cam}/unknown/image"
        self._cond = threading.Condition()
        self._queue: deque[_Message] = deque()
        # state topic -> newest value not yet handed to paho
        self._states: dict[str, str | bytes] = {}
        self._inflight: dict[int, _Message] = {}
        self._early_acks: set[int] = set()
        self._people: set[str] = set(people)
        self._removed: set[str] = set()
        self._present: dict[str, set[str]] = {}  # person -> ids of their open visits
        self._connected = self._resync = self._started = self._closing = self._closed = False
        # on_connect has read the people to announce on this link: from then on set_people
        # announces a newcomer itself (before, on_connect will; _connected comes later still)
        self._people_read = False
        self._failing = self._dropping = False
        self._delivered = self._dropped = self._connects = self._connect_errors = 0
        self._publisher = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        client_id = client_id or f"facegate-{instance}-{self._cam}-{uuid.uuid4().hex[:8]}"
        self._client = self._make_client(client_id, username, password, tls, ca_file, tls_insecure)

    def _make_client(
        self,
        client_id: str,
        username: str | None,
        password: str | None,
        tls: bool,
        ca_file: str | None,
        tls_insecure: bool,
    ) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.will_set(self._avail, OFFLINE, qos=QOS, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if username is not None:
            client.username_pw_set(username, password)
        if tls:
            try:
                client.tls_set(ca_certs=ca_file)
            except OSError as err:  # ssl.SSLError is an OSError
                raise ConfigError(f"cannot load MQTT TLS CA file {ca_file}: {err}") from err
            client.tls_insecure_set(tls_insecure)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # --- topics and payloads -------------------------------------------------------------

    def state_topic(self, person: str) -> str:
        """Where a person's presence ("ON"/"OFF", retained) is published."""
        return f"{self._root}/{self._cam}/person/{slugify(person)}/state"

    def config_topic(self, person: str) -> str:
        """Home Assistant discovery topic of a person's presence binary_sensor."""
        return f"{self._discovery_prefix}/binary_sensor/{self._node}/{slugify(person)}/config"

    def discovery_config(self, person: str) -> dict[str, Any]:
        """Home Assistant discovery payload for one person's presence sensor."""
        node = self._node
        return {
            "name": person,
            "unique_id": f"{node}_{slugify(person)}_presence",
            "device_class": "presence",
            "state_topic": self.state_topic(person),
            "payload_on": ON,
            "payload_off": OFF,
            "availability_topic": self._avail,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {
                "identifiers": [node],
                "name": f"facegate {self.instance} {self._camera}",
                "manufacturer": "facegate",
                "model": "facegate face recognition",
                "sw_version": __version__,
            },
            "origin": {"name": "facegate", "sw_version": __version__},
        }

    def image_config_topic(self) -> str:
        """Home Assistant discovery topic of the last-unknown-face image entity."""
        return f"{self._discovery_prefix}/image/{self._node}/last_unknown/config"

    def image_discovery_config(self) -> dict[str, Any]:
        """Home Assistant discovery payload of the MQTT ``image`` entity (raw JPEG bytes)."""
        person = self.discovery_config("last unknown face")
        node = self._node
        drop = ("device_class", "state_topic", "payload_on", "payload_off")
        config = {k: v for k, v in person.items() if k not in drop}
        config["unique_id"] = f"{node}_last_unknown_face"
        return {**config, "image_topic": self.image_topic, "content_type": "image/jpeg"}

    # --- the EventSink interface ---------------------------------------------------------

    def start(self) -> None:
        """Start the network loop and the publisher; connecting is retried in the background."""
        with self._cond:
            if self._started or self._closed:
                return
            self._started = True
        self._publisher.start()
        self._client.connect_async(self.host, self.port, self.keepalive)
        self._client.loop_start()
        log.info("MQTT sink started for %s:%d (topics under %s/)", self.host, self.port, self._root)

    def emit(self, event: Event) -> None:
        """Queue one event (the oldest is dropped beyond queue_size) and note a presence change."""
        payload = json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":"))
        with self._cond:
            self._presence_change(event)
            if self.unknown_image and event.kind == "unknown" and event.face_jpeg:
                self._states.pop(self.image_topic, None)  # the newest face only, never dropped
                self._states[self.image_topic] = event.face_jpeg
            if self._closed:
                self._dropped += 1
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self._dropped += 1
                if not self._dropping:
                    log.warning("MQTT queue full (%d events): dropping the oldest", self.queue_size)
                self._dropping = True
            self._queue.append(_Message(self._event_topic, payload, event=True))
            self._cond.notify_all()

    def _presence_change(self, event: Event) -> None:
        """Follow the pipeline's visits: ON at a visit's ``recognized``, OFF at its ``left``."""
        person = event.person
        if person is None or event.kind not in ("recognized", "left"):
            return
        visits = self._present.setdefault(person, set())
        if event.kind == "recognized":
            visits.add(event.visit_id or "")
        elif event.visit_id is None:
            visits.clear()  # a "left" that names no visit: the person has gone
        else:
            visits.discard(event.visit_id)
        if not visits:  # "OFF" once the person's last open visit has left
            del self._present[person]
        # Presence is a latest-value state: only the newest value waits, it is never dropped.
        self._mark_state(person)

    def _mark_state(self, person: str) -> None:
        topic = self.state_topic(person)
        self._states.pop(topic, None)
        self._states[topic] = ON if person in self._present else OFF

    def set_people(self, names: Iterable[str]) -> None:
        """Update discovery to the gallery's people (a removed person's config is cleared)."""
        new = set(names)
        with self._cond:
            removed, added = self._people - new, new - self._people
            self._people = new
            for person in removed:
                self._states.pop(self.state_topic(person), None)
            if self.discovery and not self._people_read:
                self._removed = (self._removed | removed) - new
            for person in added:
                self._mark_state(person)
            self._cond.notify_all()
            announce = self._people_read
        if self.discovery and announce:
            for msg in self._removals(removed) + self._configs(added):
                self._send(msg)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered, publish "offline", disconnect and stop within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return
            self._closing = True
            self._cond.wait_for(self._drained, timeout=timeout * 0.6)
            self._closed = True
            connected, left = self._connected, len(self._queue)
            self._dropped += left
            self._queue.clear()
            self._cond.notify_all()
        if left:
            log.warning("MQTT sink closed with %d events undelivered", left)
        if not self._started:
            return
        self._publisher.join(max(0.0, deadline - time.monotonic()))
        if connected:
            self._say_offline(deadline)
        self._client.disconnect()
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        log.info("MQTT sink closed (%d events delivered)", self._delivered)

    def _say_offline(self, deadline: float) -> None:
        info = self._send(_Message(self._avail, OFFLINE, retain=True))
        try:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as err:  # the link dropped: the will says it instead
            log.debug("could not publish %s: %s", self._avail, err)

    def _drained(self) -> bool:
        return not self._connected or not (self._queue or self._states or self._inflight)

    def stats(self) -> dict[str, float]:
        """delivered, dropped, queued, inflight, connected (0/1), reconnects, connect_errors."""
        with self._cond:
            return {
                "delivered": self._delivered,
                "dropped": self._dropped,
                "queued": len(self._queue),
                "inflight": len(self._inflight),
                "connected": int(self._connected),
                "reconnects": max(0, self._connects - 1),
                "connect_errors": self._connect_errors,
            }

    # --- the publisher thread: hands messages to paho only while connected ----------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._can_send)
                if self._closed:
                    return
                msgs = [self._queue.popleft()] if self._queue else []
                msgs += [_Message(t, v, retain=True) for t, v in self._states.items()]
                self._states.clear()
            for msg in msgs:
                self._send(msg)

    def _can_send(self) -> bool:
        if self._closed:
            return True
        idle = not self._connected or self._resync or not (self._queue or self._states)
        return not idle and len(self._inflight) < MAX_INFLIGHT

    def _send(self, msg: _Message) -> mqtt.MQTTMessageInfo:
        # Never call paho while holding self._cond: paho calls on_publish under its own lock.
        info = self._client.publish(msg.topic, msg.payload, qos=QOS, retain=msg.retain)
        with self._cond:
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.debug("MQTT publish to %s refused: %s", msg.topic, mqtt.error_string(info.rc))
            elif info.mid in self._early_acks:  # acknowledged before publish() returned
                self._early_acks.discard(info.mid)
                self._acknowledged(msg)
            else:
                self._inflight[info.mid] = msg
        return info

    def _acknowledged(self, msg: _Message) -> None:
        if msg.event:
            self._delivered += 1
        if not self._inflight:
            self._resync = False
        self._cond.notify_all()

    # --- paho callbacks (network thread) -------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._connect_failed(str(reason))
            return
        with self._cond:
            self._connects += 1
            removed, self._removed = self._removed, set()
            people, self._people_read = set(self._people), True
            for person in people | set(self._present):  # retained states may be gone: re-send
                self._mark_state(person)
        log.info("connected to MQTT broker %s:%d", self.host, self.port)
        msgs = [_Message(self._avail, ONLINE, retain=True)]
        if self.discovery:
            msgs += self._removals(removed) + self._configs(people) + self._image_configs()
        for msg in msgs:
            self._send(msg)
        with self._cond:
            # Right after this callback paho re-sends what was in flight when the link dropped;
            # newer messages wait for those acknowledgements, so events stay in order.
            self._connected, self._resync = True, bool(self._inflight)
            self._failing = self._dropping = False
            self._cond.notify_all()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._connect_failed("unreachable")

    def _connect_failed(self, reason: str) -> None:
        with self._cond:
            self._connect_errors += 1
            first, self._failing = not self._failing, True
        if first:
            log.warning(
                "cannot connect to MQTT broker %s:%d (%s); retrying", self.host, self.port, reason
            )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
            self._people_read = False
            closing = self._closing
        if was_connected and not closing:
            log.warning("lost MQTT broker %s:%d (%s); queuing events", self.host, self.port, reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: Any, props: Any
    ) -> None:
        with self._cond:
            msg = self._inflight.pop(mid, None)
            if msg is None:
                self._early_acks.add(mid)
                return
            self._acknowledged(msg)

    # --- discovery messages ---------------------------------------------------------------

    def _configs(self, people: Iterable[str]) -> list[_Message]:
        return [
            _Message(self.config_topic(p), json.dumps(self.discovery_config(p)), retain=True)
            for p in sorted(people)
        ]

    def _image_configs(self) -> list[_Message]:
        if not self.unknown_image:
            return []
        config = json.dumps(self.image_discovery_config())
        return [_Message(self.image_config_topic(), config, retain=True)]

    def _removals(self, people: Iterable[str]) -> list[_Message]:
        msgs = []
        for person in sorted(people):
            msgs.append(_Message(self.config_topic(person), "", retain=True))
            msgs.append(_Message(self.state_topic(person), "", retain=True))
        return msgs


def _from_spec(spec: str) -> dict[str, Any]:
    """``mqtt(s)://[USER@]HOST[:PORT][/PREFIX]`` as a ``[[sinks]]`` table (no passwords)."""
    try:
        url = urlsplit(spec)
        password, port = url.password, url.port
    except ValueError as err:
        raise ConfigError(f"--sink {show(spec)}: not a valid URL ({err})") from None
    if password is not None:
        raise ConfigError(
            "--sink: a password in the URL shows in `ps` and the journal: describe the sink in "
            "the config file with password_file, or pass it with systemd LoadCredential"
        )
    tls = url.scheme.lower() == "mqtts"
    data: dict[str, Any] = {
        "type": "mqtt",
        "host": url.hostname or "",
        "tls": tls,
        "port": (MQTTS_PORT if tls else MQTT_PORT) if port is None else port,
    }
    if url.username:
        data["username"] = unquote(url.username)
    if url.path.strip("/"):
        data["prefix"] = url.path.strip("/")
    return data


def _build(cfg: MqttSinkConfig, camera: str) -> MqttSink:
    password = read_secret(cfg.password_file, "mqtt-password") if cfg.username else None
    return MqttSink(
        cfg.host,
        cfg.port,
        cfg.prefix,
        camera,
        cfg.username,
        password,
        cfg.tls,
        cfg.ca_file,
        queue_size=cfg.queue_size,
        discovery=cfg.discovery,
        discovery_prefix=cfg.discovery_prefix,
        instance=cfg.instance,
        unknown_image=cfg.unknown_image,
    )


KIND = SinkKind(
    "mqtt", MqttSinkConfig, ("mqtt", "mqtts"), "mqtt(s)://[USER@]HOST[:PORT]", _from_spec, _build
)
