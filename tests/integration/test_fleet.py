"""The fleet with real processes: two bridged mosquittos (site -> central) and three daemons.

Every daemon publishes to the site broker; `facegate fleet bridge-config`'s snippet bridges it to
the central broker, where the test watches. A gallery published centrally with `facegate fleet
publish` must run on all three within 5 s (the running recognizer then names the person it
added); a daemon stopped during an update runs it within 5 s of being back; a tampered update is
refused by all three in one log line each; every event reaches the central broker, in order.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facegate import config as cfg
from facegate.fleet.bridge import BridgeSettings, render
from facegate.fleet.device import FleetDevice
from facegate.fleet.package import build
from facegate.fleet.parts import part_topic, split
from facegate.fleet.signing import load_private
from facegate.gallery.store import GalleryStore
from tests.conftest import run_cli
from tests.data import needs_tool
from tests.integration.daemon_helpers import DaemonProcess
from tests.integration.mosquitto import Mosquitto, mosquitto_binary
from tests.integration.test_daemon import HAMILTON, _clip
from tests.integration.test_faults_sinks import _with_gap
from tests.integration.test_sinks import Subscriber, wait_until
from tests.unit import test_fleet_update as unit

UPDATE_S = 5.0  # the bound: an update runs everywhere within 5 s of its publication
START_S = 120.0  # model loading of three daemons on a busy 2-core machine; only catches a hang
PASSES = 10  # loops of the 17 s clip: longer than the test, which stops the daemons itself
DEVICES = ("dev1", "dev2", "dev3")
PASSPHRASE = "fleet test passphrase"
PERSON = "lin_manuel_miranda"  # he is in the clip; v1 enrolls him
REFUSED = "fleet: gallery update refused"
TOPIC = "facegate/fleet/gallery"
PART_BYTES = 64 * 1024  # several parts an update (a template is about 33 kB), each bridged
CONFIG = """
[camera]
name = "door"
source = "{clip}"
realtime = true
max_fps = 3
[http]
enabled = false
[snapshots]
enabled = false
[[sinks]]
type = "jsonl"
path = "{home}/events.jsonl"
[[sinks]]
type = "mqtt"
host = "127.0.0.1"
port = {port}
instance = "{name}"
discovery = false
[fleet]
enabled = true
public_key_file = "{public}"
passphrase_file = "{secret}"
"""


def _looped(clip: Path, folder: Path) -> Path:
    """The clip with its black gap, PASSES times over (stream copy: no re-encoding)."""
    out = folder / "looped.mp4"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", str(PASSES - 1)]
    subprocess.run([*cmd, "-i", str(_with_gap(clip, folder)), "-c", "copy", str(out)], check=True)
    return out


@pytest.fixture()
def brokers() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """(site, central): the site broker bridged to the central one by our own snippet."""
    if mosquitto_binary() is None:
        pytest.skip("missing tool: mosquitto is not installed")
    with Mosquitto() as central:
        site = Mosquitto()
        bridge = render(BridgeSettings(f"127.0.0.1:{central.port}", "site1"))
        site.conf_path.write_text(site.conf_path.read_text() + bridge)
        with site:
            yield site, central


def _home(root: Path, name: str, bundle_dir: Path) -> Path:
    home = root / name
    (home / "models").mkdir(parents=True)
    (home / "models" / "default").symlink_to(bundle_dir)
    return home


def _enrol(home: Path, faces_dir: Path, person: str) -> None:
    photos = sorted((faces_dir / "face_recognition" / person).iterdir())
    proc = run_cli("gallery", "enroll", person, *map(str, photos), env={"FACEGATE_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr


def _publish(central: Mosquitto, home: Path, key: Path, secret: Path, version: int) -> float:
    proc = run_cli(
        "fleet", "publish", str(home / "gallery.db"), "--key", str(key), "--version",
        str(version), "--broker", f"127.0.0.1:{central.port}", "--passphrase-file", str(secret),
        "--part-bytes", str(PART_BYTES),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return time.monotonic()  # the central broker has acknowledged it


def _versions(sub: Subscriber) -> dict[str, str | None]:
    return {name: sub.last(f"facegate/{name}/gallery_version") for name in DEVICES}


def _wait_versions(sub: Subscriber, names: tuple[str, ...], version: int, since: float) -> float:
    """Seconds from ``since`` until every one of ``names`` runs ``version`` (fails past 5 s)."""
    want = str(version)
    wait_until(
        lambda: all(sub.last(f"facegate/{n}/gallery_version") == want for n in names),
        timeout=UPDATE_S - (time.monotonic() - since),
        what=f"{names} running version {version} (now {_versions(sub)})",
    )
    return time.monotonic() - since


def _publish_tampered(central: Mosquitto, home: Path, key: Path) -> None:
    signer = load_private(key)
    with GalleryStore.open(
        home / "gallery.db", "", 0, allow_model_mismatch=True, readonly=True
    ) as store:
        manifest, parts = split(build(store, PASSPHRASE, 99, signer), 99, PART_BYTES, signer)
    middle = bytearray(parts[len(parts) // 2])
    middle[-1] ^= 0x01  # one bit inside the encrypted export, after the manifest was signed
    parts[len(parts) // 2] = bytes(middle)
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(central.host, central.port)
    client.loop_start()
    messages = [(part_topic(TOPIC, i), bytes(p)) for i, p in enumerate(parts)]
    for topic, payload in [*messages, (TOPIC, manifest)]:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


class UpdateCounter:
    """Counts the gallery updates the central broker delivers (payload sizes only)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.sizes: list[int] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("facegate/fleet/gallery", 1)
        self.client.on_message = lambda c, u, m: self.sizes.append(len(m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _central_events(sub: Subscriber, name: str) -> list[tuple]:
    """The device's events as the central broker delivered them (QoS 1 repeats dropped)."""
    seen: list[tuple] = []
    for payload in sub.payloads(f"facegate/{name}/door/event"):
        e = json.loads(payload)
        key = (e["event"], e["track_id"], e["time"], e["person"])
        if key not in seen:
            seen.append(key)
    return seen


def _jsonl_events(daemon: DaemonProcess) -> list[tuple]:
    return [(e["event"], e["track_id"], e["time"], e["person"]) for e in daemon.events()]


def test_fleet_of_three_follows_the_central_gallery(
    brokers: tuple[Mosquitto, Mosquitto], bundle_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    needs_tool("ffmpeg")
    site, central = brokers
    clip = _looped(_clip(HAMILTON), tmp_path)
    # everything the devices send; not the (binary) gallery update itself
    topics = ("facegate/+/+/event", "facegate/+/available", "facegate/+/gallery_version")
    sub = Subscriber(central, (*topics, "facegate/site1/bridge"))
    wait_until(lambda: sub.last("facegate/site1/bridge") == "1", what="the bridge up")
    updates = UpdateCounter(central)
    head = _home(tmp_path, "central", bundle_dir)
    key, secret = tmp_path / "sign.pem", tmp_path / "passphrase"
    assert run_cli("fleet", "keygen", "--private", str(key)).returncode == 0
    secret.write_text(PASSPHRASE + "\n")
    secret.chmod(0o600)
    daemons = {}
    for name in DEVICES:
        home = _home(tmp_path, name, bundle_dir)
        config = home / f"{name}.toml"
        config.write_text(CONFIG.format(
            clip=clip, home=home, port=site.port, name=name, public=f"{key}.pub", secret=secret
        ))  # fmt: skip
        daemons[name] = DaemonProcess(home, "--config", str(config)).start()
    try:
        _scenario(central, sub, daemons, head, key, secret, faces_dir)
    finally:
        for daemon in daemons.values():
            daemon.stop()
    for name, daemon in daemons.items():  # SIGTERM drained each sink: all of it is there
        wait_until(
            lambda d=daemon, n=name: _central_events(sub, n) == _jsonl_events(d),
            what=f"{name}'s events at the central broker, in order",
        )
        assert len(_jsonl_events(daemon)) >= 2
        assert "Traceback" not in daemon.log()
    # v1, v2 and the tampered one, each once: the site bridge never sent one back (no loop)
    assert len(updates.sizes) == 3, updates.sizes
    updates.close()
    sub.close()


def _scenario(
    central: Mosquitto,
    sub: Subscriber,
    daemons: dict[str, DaemonProcess],
    head: Path,
    key: Path,
    secret: Path,
    faces_dir: Path,
) -> None:
    for name, daemon in daemons.items():
        daemon.wait_for(lambda n=name: sub.last(f"facegate/{n}/gallery_version") == "0", START_S,
                        f"{name} online with version 0")  # fmt: skip
    # v1: everyone runs it within 5 s, and the running recognizers name him
    _enrol(head, faces_dir, PERSON)
    took = _wait_versions(sub, DEVICES, 1, _publish(central, head, key, secret, 1))
    print(f"\nversion 1 running on all three {took:.2f} s after its publication")
    for name, daemon in daemons.items():
        daemon.wait_for(
            lambda d=daemon: (("recognized", PERSON) in {(e[0], e[3]) for e in _jsonl_events(d)}),
            60, f"{name} naming {PERSON} with the fleet's gallery",
        )  # fmt: skip
    # v2 while dev2 is down: the others within 5 s; dev2 within 5 s of being back
    daemons["dev2"].signal(signal.SIGTERM)
    assert daemons["dev2"].wait(30) == 0
    _enrol(head, faces_dir, "obama")
    took = _wait_versions(sub, ("dev1", "dev3"), 2, _publish(central, head, key, secret, 2))
    print(f"version 2 running on dev1 and dev3 {took:.2f} s after its publication")
    assert sub.last("facegate/dev2/gallery_version") == "1"
    dev2 = daemons["dev2"]
    dev2.start()
    online = len(sub.payloads("facegate/dev2/available"))
    dev2.wait_for(lambda: len(sub.payloads("facegate/dev2/available")) > online, START_S,
                  "dev2 back online")  # fmt: skip
    took = _wait_versions(sub, ("dev2",), 2, time.monotonic())
    print(f"dev2 ran version 2 {took:.2f} s after it was back online")
    # a tampered v99: refused by all three, one log line each, versions unchanged
    _publish_tampered(central, head, key)
    for name, daemon in daemons.items():
        daemon.wait_for(lambda d=daemon: REFUSED in d.log(), 30, f"{name} refusing it")
    assert _versions(sub) == dict.fromkeys(DEVICES, "2")
    for daemon in daemons.values():
        assert daemon.log().count(REFUSED) == 1, daemon.log()[-2000:]


class RetainedParts:
    """The part topics a broker holds retained, read once (a probe marks the end of them)."""

    def __init__(self, broker: Mosquitto) -> None:
        self.topics: set[str] = set()
        done = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)

        def on_message(c: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == "probe":
                done.set()
            elif msg.payload:
                self.topics.add(msg.topic)

        client.on_message = on_message
        client.on_subscribe = lambda c, *_: c.publish("probe", b"1", qos=1)
        client.connect(broker.host, broker.port)
        client.subscribe([(f"{TOPIC}/part/+", 1), ("probe", 1)])
        client.loop_start()
        assert done.wait(30), "the probe never came back"
        client.disconnect()
        client.loop_stop()


def test_a_gallery_in_many_parts_reaches_a_device_that_was_away(tmp_path: Path) -> None:
    """Published before the device starts, in 4 KiB parts: it catches up from what is retained;
    a smaller update then clears the parts the larger one left."""
    if mosquitto_binary() is None:
        pytest.skip("missing tool: mosquitto is not installed")
    key, secret = tmp_path / "sign.pem", tmp_path / "passphrase"
    assert run_cli("fleet", "keygen", "--private", str(key)).returncode == 0
    secret.write_text(PASSPHRASE + "\n")
    names = [f"Person {i}" for i in range(6)]
    with Mosquitto() as broker:
        args = ["--key", str(key), "--broker", f"127.0.0.1:{broker.port}", "--passphrase-file",
                str(secret), "--part-bytes", "4096"]  # fmt: skip
        big = unit.gallery(tmp_path / "big.db", names)
        proc = run_cli("fleet", "publish", str(big), "--version", "1", *args)
        assert proc.returncode == 0, proc.stderr
        parts = int(proc.stdout.split(" in ")[1].split()[0])
        assert parts > 10 and len(RetainedParts(broker).topics) == parts
        device = _device(tmp_path, broker, key, secret)
        device.start()
        try:
            wait_until(lambda: unit.names_in(device.gallery) == names, 60, "version 1 imported")
            small = unit.gallery(tmp_path / "small.db", names[:2])
            proc = run_cli("fleet", "publish", str(small), "--version", "2", *args)
            assert proc.returncode == 0, proc.stderr
            wait_until(lambda: unit.names_in(device.gallery) == names[:2], 60, "version 2")
        finally:
            device.close()
        fewer = int(proc.stdout.split(" in ")[1].split()[0])
        assert fewer < parts and len(RetainedParts(broker).topics) == fewer
    assert not list(tmp_path.glob(".fleet-update-*"))


def _device(tmp_path: Path, broker: Mosquitto, key: Path, secret: Path) -> FleetDevice:
    config = cfg.parse(f"""
[[sinks]]
type = "mqtt"
host = "127.0.0.1"
port = {broker.port}
instance = "door1"
[fleet]
enabled = true
public_key_file = "{key}.pub"
passphrase_file = "{secret}"
""")
    db = unit.gallery(tmp_path / "device.db", ["Local Only"])
    return FleetDevice(config, db, unit.MODEL, unit.DIM)
