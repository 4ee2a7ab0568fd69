"""The REST API and the page's routes on a real gallery and the real models (Flask test client).

What a browser or script meets: 401 without the token, 403 without the CSRF token, 413 for an
oversized upload, 400 and one line of JSON for a corrupt photo, a bomb or a hostile name, and
enrolments that really reach the gallery.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from facegate.gallery.store import GalleryStore
from facegate.gallery.unknowns import UnknownFace, UnknownStore
from facegate.service.recent import RecentEvents
from facegate.types import Event
from facegate.vision.image import load_image
from facegate.web.app import SESSION_COOKIE, WebSettings, create_app
from facegate.web.backend import Backend
from tests.unit.test_image_limits import bmp_rle8, png_zeros

pytestmark = pytest.mark.slow
TOKEN = "s3cret-token-for-tests"
OBAMA = "face_recognition/obama"
UPLOAD_LIMIT = 2_000_000


@pytest.fixture()
def gallery(tmp_path: Path, recognizer) -> Path:
    path = tmp_path / "gallery.db"
    GalleryStore.open(path, recognizer.model_id, recognizer.embedder.size).close()
    return path


@pytest.fixture()
def recent() -> RecentEvents:
    return RecentEvents(10)


def _app(gallery: Path, recognizer, recent: RecentEvents, token: str | None = TOKEN, unknowns=None):
    reader = GalleryStore.open(
        gallery, recognizer.model_id, recognizer.embedder.size, readonly=True
    )

    def writer() -> GalleryStore:
        return GalleryStore.open(gallery, recognizer.model_id, recognizer.embedder.size)

    health = lambda: {"status": "ok", "source": "streaming"}  # noqa: E731
    run_job = lambda job: job(recognizer)  # noqa: E731
    backend = Backend(lambda: reader, writer, run_job, health, recent, lambda: unknowns)
    app = create_app(backend, WebSettings(token=token, max_upload_bytes=UPLOAD_LIMIT))
    app.config["TESTING"] = True
    return app


@pytest.fixture()
def client(gallery: Path, recognizer, recent: RecentEvents):
    return _app(gallery, recognizer, recent).test_client()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _photos(faces_dir: Path, rel: str = OBAMA, count: int = 2) -> list[Path]:
    return sorted(p for p in (faces_dir / rel).iterdir() if "partial" not in p.name)[:count]


def _upload(client, name: str, files: list[tuple[str, bytes]], headers=BEARER):
    data = {"name": name, "photo": [(io.BytesIO(b), n) for n, b in files]}
    return client.post("/api/people", data=data, headers=headers)


def _one_line_error(response) -> str:
    text = response.get_data(as_text=True)
    assert text.count("\n") <= 1, text
    return json.loads(text)["error"]


def _stored_names(gallery: Path, recognizer) -> list[str]:
    with GalleryStore.open(gallery, recognizer.model_id, recognizer.embedder.size) as store:
        return [p.name for p in store.people()]


def test_api_without_token_is_401_and_with_a_wrong_one_too(client) -> None:
    assert client.get("/api/people").status_code == 401
    wrong = client.get("/api/people", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/people", headers=BEARER).get_json() == {"people": []}


def test_page_without_login_goes_to_the_login_form(client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_enrol_by_upload_reaches_the_gallery(client, gallery, recognizer, faces_dir) -> None:
    files = [(p.name, p.read_bytes()) for p in _photos(faces_dir)]
    response = _upload(client, "Barack Obama", files)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["name"] == "Barack Obama" and body["added"] == 2 and body["id"] == "barack_obama"
    assert _stored_names(gallery, recognizer) == ["Barack Obama"]
    face = client.get("/api/people/barack_obama/face", headers=BEARER)
    assert face.status_code == 200 and face.data.startswith(b"\xff\xd8")
    listed = client.get("/api/people", headers=BEARER).get_json()["people"]
    assert [(p["id"], p["templates"]) for p in listed] == [("barack_obama", 2)]


def test_rename_and_remove(client, gallery, recognizer, faces_dir) -> None:
    files = [(p.name, p.read_bytes()) for p in _photos(faces_dir, count=1)]
    assert _upload(client, "obama", files).status_code == 201
    renamed = client.patch("/api/people/obama", json={"name": "Barack"}, headers=BEARER)
    assert renamed.status_code == 200 and renamed.get_json()["id"] == "barack"
    assert _stored_names(gallery, recognizer) == ["Barack"]
    assert client.delete("/api/people/barack", headers=BEARER).get_json() == {"removed": 1}
    assert _stored_names(gallery, recognizer) == []
    gone = client.delete("/api/people/barack", headers=BEARER)
    assert gone.status_code == 404 and "no person" in _one_line_error(gone)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bomb.png", lambda: png_zeros(12_000)),
        ("bomb.bmp", lambda: bmp_rle8(20_000)),
        ("corrupt.jpg", lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 200),
        ("text.jpg", lambda: b"hello, this is not a picture\n"),
    ],
)
def test_corrupt_photos_and_bombs_are_400_one_line(client, gallery, recognizer, name, data) -> None:
    response = _upload(client, "Someone", [(name, data())])
    assert response.status_code == 400
    error = _one_line_error(response)
    assert name in error
    assert _stored_names(gallery, recognizer) == []


def test_a_bomb_among_good_photos_enrols_nothing(client, gallery, recognizer, faces_dir) -> None:
    good = [(p.name, p.read_bytes()) for p in _photos(faces_dir)]
    response = _upload(client, "obama", [*good, ("bomb.png", png_zeros(12_000))])
    assert response.status_code == 400 and "decompression bomb" in _one_line_error(response)
    assert _stored_names(gallery, recognizer) == []


def test_oversized_upload_is_413_json(client, gallery, recognizer) -> None:
    response = _upload(client, "Someone", [("big.jpg", b"\xff" * (UPLOAD_LIMIT + 1))])
    assert response.status_code == 413
    assert _one_line_error(response)
    assert _stored_names(gallery, recognizer) == []


def test_a_photo_without_a_face_is_refused_with_its_reason(client, gallery, recognizer) -> None:
    import cv2

    grey = cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
    response = _upload(client, "Nobody", [("wall.png", grey)])
    assert response.status_code == 400 and "no face found" in _one_line_error(response)
    assert _stored_names(gallery, recognizer) == []


@pytest.mark.parametrize(
    "name",
    [
        "evil\u202egnp.exe",  # right-to-left override
        "two\nlines",
        "",
        "x" * 101,
        " padded ",
        "nul\x00byte",
    ],
)
def test_hostile_names_are_refused(client, gallery, recognizer, faces_dir, name) -> None:
    files = [(p.name, p.read_bytes()) for p in _photos(faces_dir, count=1)]
    response = _upload(client, name, files)
    assert response.status_code == 400
    error = _one_line_error(response)
    assert "name" in error and "\u202e" not in error and "\x00" not in error
    assert _stored_names(gallery, recognizer) == []


def test_html_in_a_name_is_escaped_on_the_page(gallery, recognizer, recent, faces_dir) -> None:
    client = _app(gallery, recognizer, recent, token=None).test_client()
    files = [(p.name, p.read_bytes()) for p in _photos(faces_dir, count=1)]
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    name = "<script>alert(1)</script>"
    response = _upload(client, name, files, headers={"X-CSRFToken": csrf})
    assert response.status_code == 201
    page = client.get("/").get_data(as_text=True)
    assert name not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_state_changes_without_csrf_are_403(client, faces_dir) -> None:
    files = [(p.name, p.read_bytes()) for p in _photos(faces_dir, count=1)]
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
    assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf}).status_code == 302
    assert client.get("/api/people").status_code == 200  # the cookie authenticates
    no_csrf = _upload(client, "obama", files, headers={})
    assert no_csrf.status_code == 403 and "CSRF" in _one_line_error(no_csrf)
    bad = _upload(client, "obama", files, headers={"X-CSRFToken": "forged"})
    assert bad.status_code == 403
    assert client.post("/people/obama/remove").status_code == 403  # the page's form too
    stale = _upload(client, "obama", files, headers={"X-CSRFToken": csrf})
    assert stale.status_code == 403  # logging in starts a new session: the old token is void
    page = client.get("/").get_data(as_text=True)
    fresh = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    ok = _upload(client, "obama", files, headers={"X-CSRFToken": fresh})
    assert ok.status_code == 201


def test_login_with_a_wrong_token_sets_no_session(client) -> None:
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
    response = client.post("/login", data={"token": "wrong", "csrf_token": csrf})
    assert response.status_code == 200 and "not the token" in response.get_data(as_text=True)
    assert client.get("/api/people").status_code == 401


def test_login_without_csrf_is_403(client) -> None:
    assert client.post("/login", data={"token": TOKEN}).status_code == 403


def test_session_cookie_is_httponly_and_samesite_strict(client) -> None:
    login = client.get("/login")
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie


def test_without_a_token_only_a_loopback_host_is_served(gallery, recognizer, recent) -> None:
    client = _app(gallery, recognizer, recent, token=None).test_client()
    assert client.get("/api/people", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/people", headers={"Host": "localhost"}).status_code == 200
    assert client.get("/api/people", headers={"Host": "[::1]:8765"}).status_code == 200
    rebound = client.get("/api/people", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 403


def test_recent_events_with_faces(client, recent) -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:150, 100:200] = 200
    recent.add(Event("unknown", "door", 1000.0, 7, (100, 50, 200, 150), visit_id="v1"), image)
    recent.add(Event("left", "door", 1010.0, 7, (100, 50, 200, 150), visit_id="v1"), None)
    events = client.get("/api/events", headers=BEARER).get_json()["events"]
    assert [e["event"] for e in events] == ["left", "unknown"]
    assert "snapshot" not in events[0]
    assert events[0]["face"] and events[0]["face"] != events[1]["face"]
    face = client.get(events[1]["face"], headers=BEARER)
    assert face.status_code == 200 and face.data.startswith(b"\xff\xd8")
    assert client.get("/api/events/999/face", headers=BEARER).status_code == 404


def test_page_is_self_contained(gallery, recognizer, recent) -> None:
    client = _app(gallery, recognizer, recent, token=None).test_client()
    response = client.get("/")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert not re.search(r'(src|href)="(https?:)?//', page), "an external asset"
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page):
        assert client.get(asset).status_code == 200, asset


def test_openapi_document_lists_every_api_route(client) -> None:
    doc = client.get("/api/openapi.json", headers=BEARER).get_json()
    assert doc["openapi"].startswith("3.")
    app = client.application
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule).removeprefix("/api")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
    }
    assert routes == set(doc["paths"]), routes ^ set(doc["paths"])


def _sightings(store: UnknownStore, recognizer, folder: Path, track: int) -> None:
    """Every photo of ``folder`` as an unknown sighting, embedded by the real models."""
    for i, photo in enumerate(sorted(folder.glob("*.jpg"))):
        image = load_image(photo)
        faces = recognizer.detect(image)
        if len(faces) != 1:
            continue
        aligned, emb = recognizer.embed(image, faces)
        store.add(UnknownFace(emb[0], aligned[0].crop, 0.5, 1000.0 + i, "door", track))


@pytest.fixture()
def with_strangers(gallery: Path, recognizer, recent, faces_dir):
    """An app whose unknown-face store holds two strangers' sightings."""
    store = UnknownStore.open(gallery, recognizer.model_id, recognizer.embedder.size)
    _sightings(store, recognizer, faces_dir / "face_recognition" / "kit_harington", 1)
    _sightings(store, recognizer, faces_dir / "face_recognition" / "biden", 2)
    yield _app(gallery, recognizer, recent, unknowns=store).test_client(), store
    store.close()


def test_clusters_listed_with_faces_then_labelled(with_strangers, gallery, recognizer) -> None:
    client, _ = with_strangers
    clusters = client.get("/api/clusters", headers=BEARER).get_json()["clusters"]
    assert len(clusters) >= 2 and all(c["state"] == "open" for c in clusters)
    first = clusters[0]
    assert client.get(first["face"], headers=BEARER).data.startswith(b"\xff\xd8")
    detail = client.get(f"/api/clusters/{first['id']}", headers=BEARER).get_json()
    assert detail["faces"] and client.get(detail["faces"][0], headers=BEARER).status_code == 200
    hostile = client.post(
        f"/api/clusters/{first['id']}/label", json={"name": "a\u202eb"}, headers=BEARER
    )
    assert hostile.status_code == 400 and _stored_names(gallery, recognizer) == []
    done = client.post(f"/api/clusters/{first['id']}/label", json={"name": "Kit"}, headers=BEARER)
    assert done.status_code == 200 and done.get_json()["added"] >= 1
    assert _stored_names(gallery, recognizer) == ["Kit"]
    left = client.get("/api/clusters", headers=BEARER).get_json()["clusters"]
    assert first["id"] not in [c["id"] for c in left]


def test_ignore_a_cluster_and_missing_ones_are_404(with_strangers) -> None:
    client, store = with_strangers
    cluster_id = client.get("/api/clusters", headers=BEARER).get_json()["clusters"][0]["id"]
    done = client.post(f"/api/clusters/{cluster_id}/ignore", headers=BEARER)
    assert done.get_json() == {"cluster": cluster_id, "state": "ignored"}
    assert store.cluster(cluster_id).state == "ignored"
    assert client.post("/api/clusters/9999/ignore", headers=BEARER).status_code == 404
    missing = client.post("/api/clusters/9999/label", json={"name": "X"}, headers=BEARER)
    assert missing.status_code == 404
    assert client.get("/api/sightings/9999/face", headers=BEARER).status_code == 404


def test_cluster_actions_need_csrf_from_a_browser(with_strangers) -> None:
    client, _ = with_strangers
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
    client.post("/login", data={"token": TOKEN, "csrf_token": csrf})
    page = client.get("/").get_data(as_text=True)
    assert 'class="cluster"' in page
    cluster_id = re.search(r'id="cluster-(\d+)"', page)[1]
    assert client.post(f"/clusters/{cluster_id}/ignore").status_code == 403
    fresh = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]
    done = client.post(f"/clusters/{cluster_id}/ignore", data={"csrf_token": fresh})
    assert done.status_code == 303
