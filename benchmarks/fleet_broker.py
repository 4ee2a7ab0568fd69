"""What facegate devices cost a Mosquitto broker: ``python -m benchmarks.fleet_broker``.

Starts a private ``mosquitto`` (Debian's), then measures

- memory: the broker's resident memory before and after N idle clients connect as a device's
  two connections do (MQTT 3.1.1, keepalive 30 s, a last will on ``facegate/<i>/available``);
- routing: the broker's CPU time (utime + stime from /proc) per event delivered, for M QoS 1
  events of the size facegate sends (~250 bytes) to one subscriber of ``facegate/#``;
- a retained gallery update: the broker's resident memory before and after a gallery update of
  --update-mib (default 320 MiB, 10,000 people at 33 kB) is published retained in 4 MiB parts,
  and after one device that comes later has received every part.

Prints one JSON line per figure and writes fleet_broker.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

EVENT = json.dumps({
    "event": "recognized", "camera": "door", "time": 1764516000.123, "track_id": 12,
    "box": [100.0, 80.0, 180.0, 190.0], "person": "lin_manuel_miranda", "score": 0.71,
    "visit_id": "0b6a5c1e-2f4e-4d4b-9a61-0c7f3e0f6a11", "quality": {"sharpness": 180.2},
}).encode()  # fmt: skip


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, will_topic: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with clean session, keepalive 30 s and a retained QoS 1 will."""
    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean session, will, will QoS 1, will retain
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body += _string(client_id) + _string(will_topic) + _string("offline")
    return bytes([0x10]) + _length(len(body)) + body


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    """A private mosquitto on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = folder / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "max_queued_messages 100000"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def memory(pid: int, port: int, clients: int) -> dict[str, float]:
    """Broker memory per idle connected client."""
    before = rss_kib(pid)
    socks = []
    for i in range(clients):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(connect_packet(f"facegate-dev{i}", f"facegate/dev{i}/available"))
        if sock.recv(4)[:1] != b"\x20":
            raise RuntimeError("no CONNACK")
        socks.append(sock)
    after = rss_kib(pid)
    for sock in socks:
        sock.close()
    return {"clients": clients, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_client": round((after - before) / clients, 2)}  # fmt: skip


def routing(pid: int, port: int, events: int) -> dict[str, float]:
    """Broker CPU per QoS 1 event routed from one publisher to one subscriber."""
    done, subscribed, got = threading.Event(), threading.Event(), [0]

    def on_message(*_: object) -> None:
        got[0] += 1
        if got[0] >= events:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("facegate/#", 1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.max_inflight_messages_set(100)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    if not subscribed.wait(30):
        raise RuntimeError("no SUBACK")
    cpu0, wall0 = cpu_s(pid), time.monotonic()
    for i in range(events):
        pub.publish(f"facegate/dev{i % 100}/door/event", EVENT, qos=1)
    done.wait(600)
    cpu, wall = cpu_s(pid) - cpu0, time.monotonic() - wall0
    for client in (pub, sub):
        client.disconnect()
        client.loop_stop()
    return {"events": got[0], "event_bytes": len(EVENT), "broker_cpu_s": round(cpu, 2),
            "broker_us_per_event": round(cpu / max(got[0], 1) * 1e6, 1),
            "events_per_s_end_to_end": round(got[0] / wall)}  # fmt: skip


def retained(pid: int, port: int, update_mib: int) -> dict[str, float]:
    """Broker memory holding a retained update in 4 MiB parts, and serving it once."""
    part = 4 * 2**20
    count = -(-update_mib * 2**20 // part)
    before = rss_kib(pid)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publish")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(count):  # incompressible bytes, as the encrypted export is
        info = pub.publish(f"facegate/fleet/gallery/part/{i}", os.urandom(part), qos=1, retain=True)
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()
    held = rss_kib(pid)
    got, done = [0], threading.Event()

    def on_message(*_: object) -> None:
        got[0] += 1
        if got[0] >= count:
            done.set()

    dev = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-device")
    dev.on_message = on_message
    dev.connect("127.0.0.1", port)
    dev.subscribe("facegate/fleet/gallery/part/+", 1)
    dev.loop_start()
    done.wait(600)
    served = rss_kib(pid)
    dev.disconnect()
    dev.loop_stop()
    return {"update_mib": count * part // 2**20, "parts": count, "rss_before_kib": before,
            "rss_retained_kib": held, "rss_after_one_device_kib": served,
            "parts_delivered": got[0]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet_broker", description=__doc__)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--update-mib", type=int, default=320, help="retained update size")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_broker(Path(tmp))
        try:
            rows = [memory(proc.pid, port, args.clients), routing(proc.pid, port, args.events)]
            rows.append(retained(proc.pid, port, args.update_mib))
        finally:
            proc.terminate()
            proc.wait(10)
    for row in rows:
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet_broker.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
