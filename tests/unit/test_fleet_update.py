"""Fleet gallery updates without a broker: keys, the signed message, the device's import rules."""

from __future__ import annotations

import base64
import logging
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from facegate import config as cfg
from facegate.errors import ConfigError, FacegateError
from facegate.fleet.bridge import BridgeSettings, render
from facegate.fleet.device import VERSION_KEY, FleetDevice
from facegate.fleet.package import MAGIC, UpdateRefused, build, open_update
from facegate.fleet.parts import (
    MIN_PART_BYTES,
    PART_HEADER,
    Assembly,
    PartRefused,
    StalePart,
    open_manifest,
    split,
)
from facegate.fleet.signing import generate, load_private, parse_public, public_text
from facegate.gallery.exchange import export_gallery
from facegate.gallery.store import GalleryStore, Template
from tests.conftest import run_cli

MODEL, DIM = "fleet-test-model", 8
PASSPHRASE = "correct horse battery staple"
MAX = 1 << 20


def template(rng: np.random.Generator) -> Template:
    vector = rng.standard_normal(DIM).astype(np.float32)
    crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    return Template(vector / np.linalg.norm(vector), crop, "test")


def gallery(path: Path, names: list[str], model: str = MODEL) -> Path:
    rng = np.random.default_rng(len(names))
    with GalleryStore.open(path, model, DIM) as store:
        for name in names:
            store.enroll(name, [template(rng)])
    return path


def names_in(path: Path) -> list[str]:
    with GalleryStore.open(path, MODEL, DIM, readonly=True) as store:
        return sorted(p.name for p in store.people())


def message(tmp_path: Path, names: list[str], version: int, key: Ed25519PrivateKey) -> bytes:
    central = gallery(tmp_path / f"central-{version}-{len(names)}.db", names)
    with GalleryStore.open(central, MODEL, DIM, readonly=True) as store:
        return build(store, PASSPHRASE, version, key)


@pytest.fixture()
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture()
def device(tmp_path: Path, key: Ed25519PrivateKey) -> FleetDevice:
    """A device whose gallery holds 'Local Only'; its MQTT client is never started."""
    (tmp_path / "pass").write_text(PASSPHRASE + "\n")
    config = cfg.parse(f"""
[[sinks]]
type = "mqtt"
host = "127.0.0.1"
instance = "door1"
[fleet]
enabled = true
public_key = "{public_text(key.public_key())}"
passphrase_file = "{tmp_path / "pass"}"
max_mb = 1
""")
    db = gallery(tmp_path / "device.db", ["Local Only"])
    return FleetDevice(config, db, MODEL, DIM)


# --- keys ------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_refuses_to_overwrite(tmp_path: Path) -> None:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub"
    text = generate(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().strip() == text and len(base64.b64decode(text)) == 32
    assert public_text(load_private(private).public_key()) == text
    before = private.read_bytes()
    with pytest.raises(FacegateError, match="already exists"):
        generate(private, tmp_path / "other.pub")
    assert private.read_bytes() == before


def test_a_bad_public_key_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match="not base64"):
        parse_public("not base64!", "[fleet] public_key")
    with pytest.raises(ConfigError, match="32 bytes"):
        parse_public(base64.b64encode(b"short").decode(), "[fleet] public_key")


# --- the message -----------------------------------------------------------------------------


def test_a_signed_update_opens_with_its_version(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    payload = message(tmp_path, ["Alice"], 7, key)
    update = open_update(payload, key.public_key(), MAX)
    assert update.version == 7 and update.sealed_fields["format"] == "facegate-gallery-encrypted"
    assert b"Alice" not in payload  # the names travel encrypted
    assert b'"ciphertext"' not in payload  # raw ciphertext, not base64 in a JSON envelope
    plain = update.plain(PASSPHRASE, Path("update"))
    assert b'"name":"Alice"' in plain
    assert len(payload) < len(plain) + 1024  # no second base64 layer (that was 4/3 of it)


@pytest.mark.parametrize("where", [0, len(MAGIC) + 5, -200, -1])
def test_a_modified_byte_anywhere_is_refused(
    tmp_path: Path, key: Ed25519PrivateKey, where: int
) -> None:
    payload = bytearray(message(tmp_path, ["Alice"], 3, key))
    payload[where] ^= 0x01
    with pytest.raises(UpdateRefused):
        open_update(bytes(payload), key.public_key(), MAX)


def test_unsigned_other_key_truncated_and_oversized_updates_are_refused(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    payload = message(tmp_path, ["Alice"], 3, key)
    plain = tmp_path / "plain.export"
    with GalleryStore.open(tmp_path / "central-3-1.db", MODEL, DIM, readonly=True) as store:
        export_gallery(store, plain, PASSPHRASE)
    cases = {
        "no fleet header": plain.read_bytes(),
        "bad signature": message(tmp_path, ["Alice", "Bob"], 3, Ed25519PrivateKey.generate()),
        "shorter than a signature": MAGIC + b"{}",
    }
    for reason, data in cases.items():
        with pytest.raises(UpdateRefused, match=reason):
            open_update(data, key.public_key(), MAX)
    with pytest.raises(UpdateRefused, match="over the limit"):
        open_update(payload, key.public_key(), len(payload) - 1)


# --- the device ------------------------------------------------------------------------------


def test_a_newer_update_replaces_the_gallery_and_records_its_version(
    tmp_path: Path, key: Ed25519PrivateKey, device: FleetDevice
) -> None:
    device._apply(message(tmp_path, ["Alice", "Bob"], 5, key))
    assert names_in(device.gallery) == ["Alice", "Bob"]  # exactly the central gallery
    with GalleryStore.open(device.gallery, MODEL, DIM, readonly=True) as store:
        assert store.meta(VERSION_KEY) == 5
        counter = store.version()
    assert device.reload_wanted() and not device.reload_wanted()
    published: list[int] = []
    device._publish_version = lambda: published.append(device.running)  # type: ignore[method-assign]
    device.loaded(counter)
    assert device.running == 5 and published == [5]
    again = FleetDevice.__new__(FleetDevice)  # a restart reads the version from the gallery
    again.gallery, again.model_id, again.size = device.gallery, MODEL, DIM
    assert again._stored_version() == 5


@pytest.mark.parametrize("version", [4, 5])
def test_an_older_or_equal_update_leaves_the_gallery_alone(
    tmp_path: Path, key: Ed25519PrivateKey, device: FleetDevice, version: int
) -> None:
    device._apply(message(tmp_path, ["Alice"], 5, key))
    device.loaded(10**9)
    with GalleryStore.open(device.gallery, MODEL, DIM, readonly=True) as store:
        before = store.version()
    if version < 5:
        with pytest.raises(UpdateRefused, match="older"):
            device._apply(message(tmp_path, ["Mallory"], version, key))
    else:
        device._apply(message(tmp_path, ["Mallory"], version, key))
    assert names_in(device.gallery) == ["Alice"] and device.running == 5
    with GalleryStore.open(device.gallery, MODEL, DIM, readonly=True) as store:
        assert store.version() == before


def test_refusals_are_one_log_line_and_change_nothing(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    device: FleetDevice,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_model = gallery(tmp_path / "other.db", ["Eve"], model="another-model")
    with GalleryStore.open(other_model, "x", 0, allow_model_mismatch=True, readonly=True) as s:
        foreign = build(s, PASSPHRASE, 9, key)
    with GalleryStore.open(gallery(tmp_path / "c.db", ["Eve"]), MODEL, DIM, readonly=True) as s:
        wrong_pass = build(s, "another passphrase", 9, key)
    tampered = bytearray(message(tmp_path, ["Eve"], 9, key))
    tampered[-100] ^= 0xFF
    payloads = [foreign, wrong_pass, bytes(tampered), b"x" * (MAX + 1)]
    with caplog.at_level(logging.WARNING, logger="facegate.fleet.device"):
        for payload in payloads:
            device.handle(payload)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(payloads), lines
    assert all("refused" in line and "gallery unchanged" in line for line in lines)
    assert "another-model" in lines[0] and "wrong passphrase" in lines[1]
    assert "bad signature" in lines[2] and "over the limit" in lines[3]
    assert names_in(device.gallery) == ["Local Only"] and device.running == 0


# --- manifest and parts ---------------------------------------------------------------------


def test_parts_in_any_order_rebuild_the_update(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    blob = message(tmp_path, ["Alice", "Bob", "Carol"], 4, key)
    manifest, parts = split(blob, 4, MIN_PART_BYTES, key)
    assert len(parts) > 3 and all(len(p) <= MIN_PART_BYTES + PART_HEADER.size for p in parts)
    m = open_manifest(manifest, key.public_key(), MAX)
    assembly = Assembly(m, tmp_path)
    assert stat.S_IMODE(assembly.path.stat().st_mode) == 0o600
    order = [*reversed(parts[1:]), parts[3], parts[0]]  # out of order, one twice
    done = [assembly.add(p) for p in order]
    assert done[-1] and not any(done[:-1]) and assembly.read() == blob
    assembly.close()
    assert not assembly.path.exists()


def test_a_manifest_is_checked_before_anything_else(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    blob = message(tmp_path, ["Alice"], 4, key)
    manifest, _ = split(blob, 4, MIN_PART_BYTES, key)
    tampered = bytearray(manifest)
    tampered[len(manifest) // 2] ^= 0x01
    other, _ = split(blob, 4, MIN_PART_BYTES, Ed25519PrivateKey.generate())
    for payload in (bytes(tampered), other):
        with pytest.raises(UpdateRefused, match="bad signature"):
            open_manifest(payload, key.public_key(), MAX)
    with pytest.raises(UpdateRefused, match="over the limit"):
        open_manifest(manifest, key.public_key(), len(blob) - 1)  # max_mb bounds the whole
    with pytest.raises(UpdateRefused, match="not a signed"):
        open_manifest(blob, key.public_key(), MAX)


def test_tampered_stale_and_extra_parts_are_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    blob = message(tmp_path, ["Alice", "Bob"], 6, key)
    manifest, parts = split(blob, 6, MIN_PART_BYTES, key)
    _, old_parts = split(message(tmp_path, ["Alice"], 5, key), 5, MIN_PART_BYTES, key)
    assembly = Assembly(open_manifest(manifest, key.public_key(), MAX), tmp_path)
    with pytest.raises(StalePart, match="part 0 is of version 5, not 6"):
        assembly.add(old_parts[0])
    tampered = bytearray(parts[1])
    tampered[-1] ^= 0x01
    extra = PART_HEADER.pack(b"FGP1", 6, len(parts)) + b"x" * 10
    for payload, why in ((bytes(tampered), "does not match"), (extra, "beyond the manifest")):
        with pytest.raises(PartRefused, match=why):
            assembly.add(payload)
    assert assembly.missing() == list(range(len(parts)))
    assembly.close()


def collect(device: FleetDevice, manifest: bytes, parts: list[bytes]) -> None:
    device.receive(device.topic, manifest)
    for part in parts:
        device.receive(f"{device.topic}/part/x", part)


def test_the_device_imports_an_update_from_its_parts(
    tmp_path: Path, key: Ed25519PrivateKey, device: FleetDevice
) -> None:
    blob = message(tmp_path, ["Alice", "Bob"], 8, key)
    manifest, parts = split(blob, 8, MIN_PART_BYTES, key)
    _, stale = split(message(tmp_path, ["Zed"], 7, key), 7, MIN_PART_BYTES, key)
    collect(device, manifest, [*stale, *reversed(parts)])  # an older update's parts skipped
    assert names_in(device.gallery) == ["Alice", "Bob"] and device.reload_wanted()
    assert not list(tmp_path.glob(".fleet-update-*"))  # the collected file is gone


def test_a_missing_or_tampered_part_leaves_the_gallery_alone(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    device: FleetDevice,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blob = message(tmp_path, ["Alice", "Bob"], 8, key)
    manifest, parts = split(blob, 8, MIN_PART_BYTES, key)
    with caplog.at_level(logging.WARNING, logger="facegate.fleet.device"):
        collect(device, manifest, parts[:1] + parts[2:])
        device.expire(float("inf"))  # no part came before the deadline
        tampered = bytearray(parts[1])
        tampered[-1] ^= 0x01
        collect(device, manifest, [bytes(tampered), *parts])  # the rest come after: ignored
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert f"part(s) 1 of {len(parts)} missing after 60 s" in lines[0]
    assert "part 1 does not match the signed manifest" in lines[1]
    assert all("refused" in line and "gallery unchanged" in line for line in lines)
    assert names_in(device.gallery) == ["Local Only"] and not device.reload_wanted()
    assert not list(tmp_path.glob(".fleet-update-*"))


def test_a_manifest_not_newer_or_over_another_version_changes_nothing(
    tmp_path: Path,
    key: Ed25519PrivateKey,
    device: FleetDevice,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collect(device, *split(message(tmp_path, ["Alice"], 5, key), 5, MIN_PART_BYTES, key))
    device.loaded(10**9)
    old = message(tmp_path, ["Mallory"], 4, key)
    swapped = message(tmp_path, ["Mallory"], 9, key)  # a version-9 update under a manifest for 7
    with caplog.at_level(logging.INFO, logger="facegate.fleet.device"):
        collect(device, *split(old, 4, MIN_PART_BYTES, key))
        device.receive(device.topic, split(old, 5, MIN_PART_BYTES, key)[0])
        assert not list(tmp_path.glob(".fleet-update-*"))  # nothing collected for either
        collect(device, *split(swapped, 7, MIN_PART_BYTES, key))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert "version 4 is older" in lines[0] and "version 5 is the one running" in lines[1]
    assert "version 9 under a manifest for 7" in lines[-1]
    assert names_in(device.gallery) == ["Alice"] and device.running == 5


def test_an_update_larger_than_the_free_disk_is_refused_before_collecting(
    tmp_path: Path, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
        capture_output=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (tmp_path / "pass").write_text(PASSPHRASE)
        config = cfg.parse(f"""
[[sinks]]
type = "mqtt"
host = "127.0.0.1"
[fleet]
enabled = true
public_key = "{public_text(key.public_key())}"
passphrase_file = "{tmp_path / "pass"}"
""")
        small = FleetDevice(config, gallery(folder / "device.db", ["Local Only"]), MODEL, DIM)
        blob = message(tmp_path, [f"P{i}" for i in range(20)], 3, key)  # ~700 kB
        with caplog.at_level(logging.WARNING, logger="facegate.fleet.device"):
            collect(small, *split(blob, 3, MIN_PART_BYTES, key))
        assert "are free next to the gallery" in caplog.records[-1].getMessage()
        assert not list(folder.glob(".fleet-update-*")) and names_in(small.gallery) == [
            "Local Only"
        ]
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def test_publish_refuses_a_part_size_out_of_range_in_one_line(tmp_path: Path) -> None:
    generate(tmp_path / "k.pem", tmp_path / "k.pub")
    db = gallery(tmp_path / "central.db", ["Alice"])
    proc = run_cli(
        "fleet", "publish", str(db), "--key", str(tmp_path / "k.pem"), "--broker",
        "127.0.0.1:1", "--passphrase-env", "FLEET_PASS", "--part-bytes", "10",
        env={"FLEET_PASS": PASSPHRASE},
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "a part is 1024 to" in proc.stderr and "Traceback" not in proc.stderr


# --- config and the bridge -------------------------------------------------------------------


def test_fleet_config_needs_a_key_when_enabled() -> None:
    with pytest.raises(ConfigError, match="public_key"):
        cfg.parse("[fleet]\nenabled = true\n")
    assert cfg.parse("[fleet]\n").fleet.enabled is False


def test_bridge_config_carries_events_out_and_updates_in() -> None:
    text = render(BridgeSettings("central.example:8883", "site1", ca="/etc/ca.pem"))
    lines = text.splitlines()
    for line in (
        "address central.example:8883",
        "cleansession false",
        "topic facegate/# out 1",
        "topic facegate/fleet/gallery in 1",
        "topic facegate/fleet/gallery/part/+ in 1",
        "bridge_cafile /etc/ca.pem",
    ):
        assert line in lines


def test_bridge_config_cli_writes_0600_with_credentials_and_refuses_bad_input(
    tmp_path: Path,
) -> None:
    out, secret = tmp_path / "bridge.conf", tmp_path / "pw"
    secret.write_text("s3cret\n")
    args = ["fleet", "bridge-config", "--central", "c.example:1883", "--instance", "s1"]
    proc = run_cli(*args, "--username", "u", "--password-file", str(secret), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "remote_password s3cret" in out.read_text()
    again = run_cli(*args, "--out", str(out))
    assert again.returncode == 1 and again.stderr.startswith("facegate: error:")
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    bad = run_cli("fleet", "bridge-config", "--central", "no-port")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "HOST:PORT" in bad.stderr


def test_preflight_names_what_an_enabled_fleet_lacks(key: Ed25519PrivateKey) -> None:
    from facegate.service import preflight

    fleet = f'[fleet]\nenabled = true\npublic_key = "{public_text(key.public_key())}"\n'
    found = preflight.check(cfg.parse(fleet), ["fleet"]).problems
    assert len(found) == 1 and 'needs a [[sinks]] type = "mqtt"' in found[0]
    sink = '[[sinks]]\ntype = "mqtt"\nhost = "h"\n'
    found = preflight.check(cfg.parse(sink + fleet), ["fleet"]).problems
    assert len(found) == 1 and "passphrase" in found[0]
    assert preflight.check(cfg.parse(sink), ["fleet"]).problems == ()
