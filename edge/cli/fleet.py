"""``facegate fleet``: keys, signed gallery updates and Mosquitto bridges for many devices."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from facegate.errors import FacegateError

DEFAULT_TOPIC = "facegate/fleet/gallery"
PUBLISH_TIMEOUT_S = 60.0  # connect, send and have the broker acknowledge a message of many MiB
RETAINED_TIMEOUT_S = 10.0  # the broker's answer to a subscription: the previous manifest, if any
DEFAULT_PART_BYTES = 4 * 1024 * 1024  # facegate.fleet.parts.DEFAULT_PART_BYTES (not imported)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fleet`` and its actions."""
    p = sub.add_parser("fleet", help="many devices: keys, gallery updates, broker bridges")
    fsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = fsub.add_parser("keygen", help="make the ed25519 keypair that signs gallery updates")
    k.add_argument("--private", type=Path, default=Path("fleet-signing.pem"), metavar="PATH")
    k.add_argument("--public", type=Path, default=None, metavar="PATH", help="default: PRIVATE.pub")
    k.add_argument("--force", action="store_true", help="replace existing key files")
    k.set_defaults(func=cmd_keygen)
    u = fsub.add_parser("publish", help="publish a gallery as a signed, encrypted, retained update")
    u.add_argument("gallery", type=Path, metavar="GALLERY.db")
    u.add_argument("--key", type=Path, required=True, metavar="PRIVATE", help="signing key")
    u.add_argument("--broker", required=True, metavar="HOST:PORT")
    u.add_argument("--version", type=int, help="update version (default: the time in seconds)")
    u.add_argument("--topic", default=DEFAULT_TOPIC)
    u.add_argument(
        "--part-bytes", type=int, default=DEFAULT_PART_BYTES, metavar="N",
        help="the update goes out in retained parts of at most N bytes (default 4 MiB)",
    )  # fmt: skip
    _secret_options(u)
    _broker_options(u)
    u.set_defaults(func=cmd_publish)
    b = fsub.add_parser("bridge-config", help="write a Mosquitto bridge to the central broker")
    b.add_argument("--central", required=True, metavar="HOST:PORT")
    b.add_argument("--instance", help="this device or site (default: the host name)")
    b.add_argument("--prefix", default="facegate", help="the MQTT sinks' topic prefix")
    b.add_argument("--topic", default=DEFAULT_TOPIC, help="the gallery update topic")
    b.add_argument("--ca", help="CA certificate of the central broker (TLS)")
    b.add_argument("--cert", help="this bridge's client certificate")
    b.add_argument("--key", help="its private key")
    b.add_argument("--username", help="user at the central broker")
    b.add_argument("--password-file", help="file holding that user's password")
    b.add_argument("--out", type=Path, help="file to write (default: stdout); 0600 with secrets")
    b.add_argument("--force", action="store_true", help="replace an existing --out file")
    b.set_defaults(func=cmd_bridge_config)


def _secret_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--passphrase-file", type=Path, metavar="PATH", help="export passphrase file")
    g.add_argument("--passphrase-env", metavar="VAR", help="export passphrase variable")


def _broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", help="CA certificate for TLS (default: the system's)")
    p.add_argument("--username", help="broker user")
    p.add_argument("--password-file", help="file holding the broker password")


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new signing keypair and print the public key for the devices' configs."""
    from facegate.fleet.signing import generate

    public_path = args.public or args.private.with_name(args.private.name + ".pub")
    public = generate(args.private, public_path, overwrite=args.force)
    print(f"private key (keep it on the publishing machine, mode 0600): {args.private}")
    print(f"public key file: {public_path}")
    print(f'device config:  [fleet] public_key = "{public}"')
    return 0


def _passphrase(args: argparse.Namespace) -> str:
    if args.passphrase_env is not None:
        secret = os.environ.get(args.passphrase_env, "")
        where = f"${args.passphrase_env}"
    else:
        from facegate.config.secrets import read_secret

        secret, where = read_secret(str(args.passphrase_file), "fleet-passphrase") or "", "file"
    if not secret:
        raise FacegateError(f"the export passphrase ({where}) is empty or unset")
    return secret


def cmd_publish(args: argparse.Namespace) -> int:
    """Sign and publish the gallery in parts, then its manifest (retained, QoS 1)."""
    from facegate.fleet.bridge import split_host_port
    from facegate.fleet.parts import split
    from facegate.fleet.signing import load_private

    host, port = split_host_port(args.broker)
    key, passphrase = load_private(args.key), _passphrase(args)
    version = args.version if args.version is not None else int(time.time())
    blob, people = _build(args.gallery, passphrase, version, key)
    manifest, parts = split(blob, version, args.part_bytes, key)
    _publish(args, host, port, manifest, parts, key)
    print(
        f"published gallery version {version} ({people} people, {len(blob)} bytes in"
        f" {len(parts)} part(s)) to {host}:{port} {args.topic}"
    )
    return 0


def _build(gallery: Path, passphrase: str, version: int, key: Any) -> tuple[bytes, int]:
    from facegate.fleet.package import build
    from facegate.gallery.store import GalleryStore

    if not gallery.is_file():
        raise FacegateError(f"no gallery at {gallery}")
    # The gallery's own model: the devices check it against theirs when they import.
    with GalleryStore.open(gallery, "", 0, allow_model_mismatch=True, readonly=True) as store:
        people = len(store.people())
        return build(store, passphrase, version, key), people


def _publish(
    args: argparse.Namespace, host: str, port: int, manifest: bytes, parts: list, key: Any
) -> None:
    """Parts first, then the manifest; then clear the parts a larger previous update left."""
    from facegate.fleet.parts import part_topic

    client = _connect(args, host, port)
    try:
        before = _previous_parts(client, args.topic, key)
        messages = [(part_topic(args.topic, i), bytes(p)) for i, p in enumerate(parts)]
        _send(client, host, port, messages)
        _send(client, host, port, [(args.topic, manifest)])
        stale = range(len(parts), before)
        _send(client, host, port, [(part_topic(args.topic, i), b"") for i in stale])
    except (RuntimeError, ValueError) as err:
        raise FacegateError(f"publishing to {host}:{port} failed: {err}") from err
    finally:
        client.disconnect()
        client.loop_stop()


def _connect(args: argparse.Namespace, host: str, port: int) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from facegate.config.secrets import read_secret

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"facegate-publish-{os.getpid()}")
    if args.username:
        client.username_pw_set(args.username, read_secret(args.password_file, "mqtt-password"))
    if args.tls or args.ca_file:
        client.tls_set(ca_certs=args.ca_file)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as err:
        raise FacegateError(f"cannot connect to {host}:{port}: {err.strerror or err}") from err
    client.loop_start()
    return client


def _send(client: Any, host: str, port: int, messages: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
    deadline = time.monotonic() + PUBLISH_TIMEOUT_S
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        if not info.is_published():
            raise FacegateError(f"{host}:{port} did not acknowledge the update in time")


def _previous_parts(client: Any, topic: str, key: Any) -> int:
    """How many parts the update retained on ``topic`` has (0: none, or not ours).

    A probe message sent after the subscription comes back after the retained manifest, so
    "no manifest" is known without waiting out a timeout.
    """
    import contextlib
    import threading

    from facegate.fleet.package import UpdateRefused
    from facegate.fleet.parts import open_manifest

    probe, found, done = f"{topic}/probe/{os.getpid()}", [0], threading.Event()

    def on_message(c: Any, userdata: object, msg: Any) -> None:
        if msg.topic == topic and msg.payload:
            # another format or signer: its parts are not ours to clear
            with contextlib.suppress(UpdateRefused):
                found[0] = len(open_manifest(msg.payload, key.public_key(), 2**62).hashes)
        elif msg.topic == probe:
            done.set()

    client.on_message = on_message
    client.on_subscribe = lambda c, *_: c.publish(probe, b"1", qos=1)
    client.subscribe([(topic, 1), (probe, 1)])
    done.wait(RETAINED_TIMEOUT_S)
    client.unsubscribe([topic, probe])
    return found[0]


def cmd_bridge_config(args: argparse.Namespace) -> int:
    """Print or write the Mosquitto bridge snippet."""
    from facegate.fleet.bridge import BridgeSettings, render
    from facegate.fleet.files import PRIVATE_MODE, PUBLIC_MODE, write_new
    from facegate.host.instance import default_instance

    settings = BridgeSettings(
        args.central,
        args.instance or default_instance(),
        args.prefix.strip("/"),
        args.topic,
        args.ca,
        args.cert,
        args.key,
        args.username,
        args.password_file,
    )
    text = render(settings)
    if args.out is None:
        print(text, end="")
        return 0
    mode = PRIVATE_MODE if settings.holds_credentials() else PUBLIC_MODE
    write_new(args.out, text.encode("utf-8"), mode, overwrite=args.force)
    print(f"wrote {args.out} (mode {mode:o}); include it in mosquitto.conf and restart mosquitto")
    return 0
