"""The daemon's fleet side: signed gallery updates in, the version it runs out.

It uses the first ``[[sinks]] type = "mqtt"``'s broker and instance, with a connection of its own:

- subscribes (QoS 1) to ``[fleet] topic``, where the update's signed manifest is retained, so a
  device that was away gets the newest one as soon as it is back;
- on a manifest signed by the pinned key and newer than the running version, subscribes to the
  retained parts (``facegate.fleet.parts``) and writes them, each checked against the manifest,
  into a 0600 file next to the gallery; parts of another version are skipped, and when no part
  has come for ``PART_IDLE_S`` the update is given up in one log line naming the missing parts;
- refuses, in one log line and without touching the gallery, an update that is too large,
  unsigned, signed by another key, modified, not newer than the running version, or that does not
  decrypt or check (``facegate.gallery.exchange.read_export``);
- otherwise replaces the gallery's people with the update's in one SQLite transaction that also
  records ``fleet_version`` in the gallery (so the version survives restarts), then asks the
  daemon to reload its gallery at once and, when the recognizer runs it, publishes the version on
  ``<prefix>/<instance>/gallery_version`` (retained).
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from facegate.config.schema import Config, FleetConfig
from facegate.config.secrets import read_secret
from facegate.errors import ConfigError, FacegateError
from facegate.fleet.package import UpdateRefused, open_update
from facegate.fleet.parts import (
    Assembly,
    PartRefused,
    StalePart,
    open_manifest,
    parts_filter,
    remove_leftovers,
)
from facegate.fleet.signing import read_public
from facegate.gallery.exchange import read_export
from facegate.gallery.store import GalleryStore
from facegate.sinks.mqtt import RECONNECT_MAX_S, RECONNECT_MIN_S, MqttSinkConfig, default_instance

log = logging.getLogger(__name__)

QOS = 1
VERSION_KEY = "fleet_version"  # in the gallery's meta table, written with the update
KEEPALIVE_S = 30
MIB = 1024 * 1024
# No part for 60 s: the update is given up (logged). Counted from the last part that came, so a
# large update on a slow link is not cut short: 4 MiB at 1 Mbit/s takes about 34 s.
PART_IDLE_S = 60.0
REFUSED = "fleet: gallery update refused: %s; still running version %d, gallery unchanged"


@dataclass(frozen=True, slots=True)
class Broker:
    """The broker and the names the fleet uses there (from the first MQTT sink)."""

    sink: MqttSinkConfig
    instance: str

    @property
    def version_topic(self) -> str:
        """Where this device says which gallery version it runs."""
        return f"{self.sink.prefix.strip('/')}/{self.instance}/gallery_version"


def broker_of(config: Config) -> Broker:
    """The first MQTT sink's broker and instance; ConfigError when there is no MQTT sink."""
    sink = next((s for s in config.sinks if isinstance(s, MqttSinkConfig)), None)
    if sink is None:
        raise ConfigError('[fleet] enabled needs a [[sinks]] type = "mqtt": it uses that broker')
    return Broker(sink, sink.instance or default_instance())


def settings_problem(config: Config) -> str | None:
    """Why ``[fleet]`` cannot start here (no MQTT sink, no key, no passphrase), or None."""
    try:
        broker_of(config)
        read_public(config.fleet.public_key, config.fleet.public_key_file)
        _passphrase(config.fleet)
    except ConfigError as err:
        return str(err)
    return None


def _passphrase(fleet: FleetConfig) -> str:
    passphrase = read_secret(fleet.passphrase_file, "fleet-passphrase")
    if not passphrase:
        raise ConfigError(
            "[fleet] needs the export passphrase: passphrase_file, or the systemd"
            " credential fleet-passphrase"
        )
    return passphrase


class FleetDevice:
    """Follows the fleet's gallery; ``reload_wanted`` and ``loaded`` are the daemon's hooks."""

    def __init__(self, config: Config, gallery: Path, model_id: str, embedding_size: int) -> None:
        fleet: FleetConfig = config.fleet
        self.broker = broker_of(config)
        self.topic, self.max_bytes = fleet.topic, int(fleet.max_mb * MIB)
        self.key = read_public(fleet.public_key, fleet.public_key_file)
        self._passphrase = _passphrase(fleet)
        self.gallery, self.model_id, self.size = Path(gallery), model_id, embedding_size
        self.running = self._stored_version()
        self.part_idle_s = PART_IDLE_S
        self._cond = threading.Condition()
        self._inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._assembly: Assembly | None = None
        self._deadline = 0.0  # monotonic time the assembly is given up at
        self._applied: tuple[int, int] | None = None  # (version, gallery counter) imported
        self._reload = threading.Event()
        self._worker = threading.Thread(target=self._work, name="fleet-gallery", daemon=True)
        self._client = self._make_client()
        remove_leftovers(self.gallery.parent)

    def _stored_version(self) -> int:
        with GalleryStore.open(self.gallery, self.model_id, self.size, readonly=True) as store:
            value = store.meta(VERSION_KEY)
        return value if isinstance(value, int) else 0

    def _make_client(self) -> mqtt.Client:
        sink = self.broker.sink
        client_id = f"facegate-{self.broker.instance}-fleet-{uuid.uuid4().hex[:8]}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if sink.username:
            client.username_pw_set(sink.username, read_secret(sink.password_file, "mqtt-password"))
        if sink.tls:
            try:
                client.tls_set(ca_certs=sink.ca_file)
            except OSError as err:
                raise ConfigError(f"cannot load MQTT TLS CA file {sink.ca_file}: {err}") from err
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect (retried in the background) and start the worker that applies updates."""
        self._worker.start()
        sink = self.broker.sink
        self._client.connect_async(sink.host, sink.port, KEEPALIVE_S)
        self._client.loop_start()
        log.info("fleet: following %s, running gallery version %d", self.topic, self.running)

    def close(self) -> None:
        """Stop the worker and disconnect."""
        self._inbox.put(None)
        self._client.disconnect()
        self._client.loop_stop()
        self._worker.join(5.0)
        self._drop()

    # --- the daemon's hooks ------------------------------------------------------------------

    def reload_wanted(self) -> bool:
        """True once after an update was imported: the daemon reloads its gallery now."""
        wanted = self._reload.is_set()
        self._reload.clear()
        return wanted

    def loaded(self, counter: int) -> None:
        """The daemon's recognizer now runs gallery state ``counter``: report the version."""
        with self._cond:
            applied = self._applied
            if applied is None or counter < applied[1]:
                return
            self._applied, self.running = None, applied[0]
        log.info("fleet: running gallery version %d", applied[0])
        self._publish_version()

    # --- MQTT (paho's thread) ------------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("fleet: broker refused the connection (%s); retrying", reason)
            return
        client.subscribe(self.topic, qos=QOS)
        self._publish_version()

    def _publish_version(self) -> None:
        self._client.publish(self.broker.version_topic, str(self.running), qos=QOS, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:  # an empty one clears a retained manifest or part
            self._inbox.put((msg.topic, bytes(msg.payload)))

    # --- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            wait = None if self._assembly is None else max(0.0, self._deadline - time.monotonic())
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                self.expire(time.monotonic())
                continue
            if item is None:
                return
            self.receive(*item)

    def receive(self, topic: str, payload: bytes) -> None:
        """One message from the broker: a manifest on the topic, or a part."""
        try:
            if topic == self.topic:
                self._manifest(payload)
            elif self._assembly is not None:
                self._part(payload)
        except OSError as err:  # the folder next to the gallery: full, read-only
            why = f"cannot store it next to the gallery: {err.strerror or err}"
            log.warning(REFUSED, why, self.running)
            self._drop()
        except Exception:  # the worker must outlive any one message
            log.exception("fleet: gallery update failed; gallery unchanged")
            self._drop()

    def _manifest(self, payload: bytes) -> None:
        try:
            manifest = open_manifest(payload, self.key, self.max_bytes)
        except UpdateRefused as err:
            log.warning(REFUSED, err, self.running)
            return
        if manifest.version == self.running:
            log.info("fleet: gallery version %d is the one running", manifest.version)
            return
        if manifest.version < self.running:
            log.warning(REFUSED, f"version {manifest.version} is older", self.running)
            return
        if self._assembly is None or self._assembly.manifest.version != manifest.version:
            self._drop()
            free = shutil.disk_usage(self.gallery.parent).free
            if free < manifest.size:
                why = f"{manifest.size} bytes, but {free} are free next to the gallery"
                log.warning(REFUSED, f"version {manifest.version}: {why}", self.running)
                return
            self._assembly = Assembly(manifest, self.gallery.parent)
            log.info(
                "fleet: collecting gallery version %d (%d bytes in %d part(s))",
                manifest.version,
                manifest.size,
                len(manifest.hashes),
            )
        self._deadline = time.monotonic() + self.part_idle_s
        self._client.subscribe(parts_filter(self.topic), qos=QOS)  # again: the retained parts

    def _part(self, payload: bytes) -> None:
        assembly = self._assembly
        assert assembly is not None
        try:
            complete = assembly.add(payload)
        except StalePart as err:
            log.info("fleet: skipped %s", err)
            return
        except PartRefused as err:
            log.warning(REFUSED, f"version {assembly.manifest.version}: {err}", self.running)
            self._drop()
            return
        self._deadline = time.monotonic() + self.part_idle_s
        if complete:
            blob = assembly.read()
            self._drop()
            self.handle(blob, assembly.manifest.version)

    def expire(self, now: float) -> None:
        """Give up the update being collected when no part came before its deadline."""
        assembly = self._assembly
        if assembly is None or now < self._deadline:
            return
        missing = assembly.missing()
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        count = len(assembly.manifest.hashes)
        why = (
            f"version {assembly.manifest.version}: part(s) {shown} of {count} missing"
            f" after {self.part_idle_s:g} s"
        )
        log.warning(REFUSED, why, self.running)
        self._drop()

    def _drop(self) -> None:
        """Forget the update being collected, its file and the parts' subscription."""
        if self._assembly is not None:
            self._assembly.close()
            self._assembly = None
            self._client.unsubscribe(parts_filter(self.topic))

    def handle(self, payload: bytes, expected: int | None = None) -> None:
        """Apply one whole update, or refuse it in one log line leaving the gallery alone."""
        try:
            self._apply(payload, expected)
        except FacegateError as err:  # UpdateRefused, GalleryError, ConfigError
            log.warning(REFUSED, err, self.running)
        except Exception:  # the stage loop: one bad message must not end the worker
            log.exception("fleet: gallery update failed; gallery unchanged")

    def _apply(self, payload: bytes, expected: int | None = None) -> None:
        update = open_update(payload, self.key, self.max_bytes)
        if expected is not None and update.version != expected:
            raise UpdateRefused(f"version {update.version} under a manifest for {expected}")
        if update.version == self.running:
            log.info("fleet: gallery version %d is the one running", update.version)
            return
        if update.version < self.running:
            raise UpdateRefused(f"version {update.version} is older than the running one")
        version, name = update.version, Path(f"{self.topic} version {update.version}")
        plain = update.plain(self._passphrase, name)  # named in messages
        del update, payload  # the caller's copy aside, hold one form of it at a time
        with GalleryStore.open(self.gallery, self.model_id, self.size) as store:
            people = read_export(store, name, data=plain)
            del plain
            store.mirror(people, **{VERSION_KEY: version})
            counter = store.version()
        log.info("fleet: gallery version %d imported (%d person(s))", version, len(people))
        with self._cond:
            self._applied = (version, counter)
        self._reload.set()
