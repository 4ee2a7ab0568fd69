"""A throwaway RTSP server for tests: ffmpeg publishes a looping clip, OpenCV pulls it.

ffmpeg cannot serve RTSP to clients itself (its ``rtsp`` muxer only *publishes* to a server, and
``-rtsp_flags listen`` works for input only), so this module is also a tiny RTSP relay (stdlib
only, TCP-interleaved RTP, one path): ffmpeg ANNOUNCEs and RECORDs into it, readers DESCRIBE,
SETUP and PLAY, and every ``$``-framed RTP/RTCP packet from the publisher is copied to them.

``RtspServer(clip, port)`` runs the relay (``python rtsp_server.py PORT``) and the ffmpeg
publisher as two subprocesses; ``kill()`` SIGKILLs both, like a camera losing power, and
``start()`` brings them back on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

START_TIMEOUT = 15.0  # seconds for the relay to listen and ffmpeg to start publishing
PUBLIC = "OPTIONS, DESCRIBE, ANNOUNCE, SETUP, RECORD, PLAY, TEARDOWN, GET_PARAMETER"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the relay (runs in its own process) -------------------------------------------------


class _Relay:
    """The state shared by all connections: the publisher's SDP and the playing readers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sdp: bytes | None = None
        self.readers: set[socket.socket] = set()

    def forward(self, packet: bytes) -> None:
        with self.lock:
            readers = list(self.readers)
        for conn in readers:
            try:
                conn.sendall(packet)
            except OSError:
                self.drop(conn)

    def drop(self, conn: socket.socket) -> None:
        with self.lock:
            self.readers.discard(conn)
        conn.close()

    def unpublish(self) -> None:
        with self.lock:
            self.sdp, readers, self.readers = None, list(self.readers), set()
        for conn in readers:  # like mediamtx: readers of a path lose it with its publisher
            conn.close()


def _read_exact(conn: socket.socket, buf: bytearray, n: int) -> bytes | None:
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_message(conn: socket.socket, buf: bytearray) -> tuple[str, dict, bytes] | bytes | None:
    """The next RTSP request (method line, headers, body) or ``$`` packet; None at EOF."""
    head = _read_exact(conn, buf, 1)
    if head is None:
        return None
    if head == b"$":
        header = _read_exact(conn, buf, 3)
        if header is None:
            return None
        payload = _read_exact(conn, buf, int.from_bytes(header[1:3], "big"))
        return None if payload is None else b"$" + header + payload
    buf[:0] = head
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buf += chunk
    raw, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    line, *lines = raw.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    body = _read_exact(conn, buf, int(headers.get("content-length", "0")))
    return (line, headers, body or b"") if body is not None else None


def _reply(conn: socket.socket, cseq: str, status: str = "200 OK", extra: str = "", body=b""):
    head = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    conn.sendall(head.encode() + b"\r\n" + body)


def _answer(relay: _Relay, conn: socket.socket, line: str, headers: dict, body: bytes) -> str:
    """Answer one request; returns the connection's new role ('', 'publisher', 'reader')."""
    method, url = line.split(" ")[:2]
    cseq, session = headers.get("cseq", "0"), "Session: 4711;timeout=60\r\n"
    transport = headers.get("transport", "")
    if method == "ANNOUNCE":
        relay.sdp = body
        _reply(conn, cseq)
    elif method == "DESCRIBE":
        sdp = relay.sdp
        if sdp is None:
            _reply(conn, cseq, "404 Not Found")
        else:
            extra = f"Content-Base: {url.rstrip('/')}/\r\nContent-Type: application/sdp\r\n"
            _reply(conn, cseq, extra=extra, body=sdp)
    elif method == "SETUP":
        if "interleaved=" not in transport:
            _reply(conn, cseq, "461 Unsupported Transport")
        else:
            _reply(conn, cseq, extra=f"Transport: {transport}\r\n{session}")
    elif method == "RECORD":
        _reply(conn, cseq, extra=session)
        print("publishing", flush=True)
        return "publisher"
    elif method == "PLAY":
        _reply(conn, cseq, extra=session)
        with relay.lock:
            relay.readers.add(conn)
        return "reader"
    else:  # OPTIONS, GET_PARAMETER (keep-alive), TEARDOWN, SET_PARAMETER
        _reply(conn, cseq, extra=f"Public: {PUBLIC}\r\n{session}")
    return ""


def _serve(relay: _Relay, conn: socket.socket) -> None:
    buf, role = bytearray(), ""
    try:
        while (msg := _read_message(conn, buf)) is not None:
            if isinstance(msg, bytes):
                if role == "publisher":
                    relay.forward(msg)
            else:
                role = _answer(relay, conn, *msg) or role
    except OSError:
        pass
    finally:
        if role == "publisher":
            relay.unpublish()
        relay.drop(conn)


def serve(port: int) -> None:
    """Run the relay on 127.0.0.1:``port`` until killed."""
    relay = _Relay()
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a reader that stops reading must not stall the publisher: sends give up after 5 s
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 5, 0))
        threading.Thread(target=_serve, args=(relay, conn), daemon=True).start()


# ---- the test-side handle -----------------------------------------------------------------


class RtspServer:
    """ffmpeg looping ``clip`` into an RTSP relay at ``rtsp://127.0.0.1:PORT/cam``."""

    def __init__(self, clip: Path | str, port: int | None = None) -> None:
        self.clip = Path(clip)
        self.port = port or free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._relay: subprocess.Popen | None = None
        self._ffmpeg: subprocess.Popen | None = None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the relay and the publisher; return once the stream can be played."""
        if shutil.which("ffmpeg") is None:
            raise RuntimeError("ffmpeg is not installed")
        self.kill()
        self._relay = subprocess.Popen(
            [sys.executable, __file__, str(self.port)], stdout=subprocess.PIPE, text=True
        )
        if self._relay.stdout is None or self._relay.stdout.readline().strip() != "listening":
            self.kill()
            raise RuntimeError(f"the RTSP relay did not start on port {self.port}")
        self._ffmpeg = subprocess.Popen(self._ffmpeg_args(), stdin=subprocess.DEVNULL)
        self._wait_publishing(timeout)

    def _ffmpeg_args(self) -> list[str]:
        return [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-stream_loop", "-1", "-i", str(self.clip),
            "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "15", "-pix_fmt", "yuv420p",
            "-f", "rtsp", "-rtsp_transport", "tcp", self.url,
        ]  # fmt: skip

    def _wait_publishing(self, timeout: float) -> None:
        assert self._relay is not None and self._relay.stdout is not None
        stdout, done = self._relay.stdout, threading.Event()
        # the relay prints "publishing" once ffmpeg RECORDs; EOF (relay died) leaves done unset
        threading.Thread(target=lambda: stdout.readline() and done.set(), daemon=True).start()
        if not done.wait(timeout):
            self.kill()
            raise RuntimeError(f"ffmpeg did not start publishing within {timeout:g} s")

    def kill(self) -> None:
        """SIGKILL the publisher and the relay (a camera losing power); safe to call twice."""
        for proc in (self._ffmpeg, self._relay):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            if proc is not None:
                proc.wait(timeout=5)
                if proc.stdout is not None:
                    proc.stdout.close()
        self._ffmpeg = self._relay = None

    def pause(self) -> None:
        """SIGSTOP the publisher: the connection stays open but no data flows (a hung camera)."""
        if self._ffmpeg is not None:
            os.kill(self._ffmpeg.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the publisher after :meth:`pause`."""
        if self._ffmpeg is not None:
            os.kill(self._ffmpeg.pid, signal.SIGCONT)

    @property
    def running(self) -> bool:
        """Whether both processes are alive."""
        return all(p is not None and p.poll() is None for p in (self._relay, self._ffmpeg))

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
