"""Test inputs: the real CAP files in tests/data (copied from ../shared/data, sources in
tests/data/README.md) and a Chinese alert.

Test modules parametrise over the example files at collection time, so this is a plain module
rather than fixtures.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
VALID_DIR = DATA / "cap"
INVALID_DIR = DATA / "cap-invalid"


def valid_examples() -> list[Any]:
    """Every valid CAP 1.2 example file (cap12.xsd aside), one pytest param each."""
    files = sorted(path for path in VALID_DIR.iterdir() if path.suffix != ".xsd")
    return [pytest.param(path, id=path.name) for path in files]


def example(name: str) -> bytes:
    """The bytes of one example, valid or invalid."""
    for folder in (VALID_DIR, INVALID_DIR):
        if (folder / name).is_file():
            return (folder / name).read_bytes()
    raise FileNotFoundError(f"{name} not found in {VALID_DIR} or {INVALID_DIR}")


# A red rainstorm warning as China's release system would send it for 埭头镇 (320481101),
# Liyang: the division code travels as geocode "CPEAS Geographic Code", written to 12 digits.
CHINESE_CAP = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>32048141600000020260701080000001</identifier>
  <sender>32048141600000</sender>
  <sent>2026-07-01T08:00:00+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>暴雨</event>
    <responseType>Prepare</responseType>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Likely</certainty>
    <effective>2026-07-01T08:00:00+08:00</effective>
    <expires>2026-07-02T08:00:00+08:00</expires>
    <senderName>溧阳市气象台</senderName>
    <headline>溧阳市气象台发布暴雨红色预警信号</headline>
    <description>过去3小时埭头镇降雨量已达100毫米以上，且降雨将持续。</description>
    <instruction>停止集会、停课、停业；做好山洪、滑坡等灾害的防御和抢险工作。</instruction>
    <area>
      <areaDesc>溧阳市埭头镇</areaDesc>
      <geocode>
        <valueName>CPEAS Geographic Code</valueName>
        <value>320481101000</value>
      </geocode>
    </area>
  </info>
</alert>
"""

CHINESE_JSON: dict[str, Any] = {
    "identifier": "32048141600000020260701080000001",
    "sender": "32048141600000",
    "sent": "2026-07-01T08:00:00+08:00",
    "status": "Actual",
    "msg_type": "Alert",
    "scope": "Public",
    "infos": [
        {
            "language": "zh-CN",
            "categories": ["Met"],
            "event": "暴雨",
            "response_types": ["Prepare"],
            "urgency": "Immediate",
            "severity": "Extreme",
            "certainty": "Likely",
            "effective": "2026-07-01T08:00:00+08:00",
            "expires": "2026-07-02T08:00:00+08:00",
            "sender_name": "溧阳市气象台",
            "headline": "溧阳市气象台发布暴雨红色预警信号",
            "description": "过去3小时埭头镇降雨量已达100毫米以上，且降雨将持续。",
            "instruction": "停止集会、停课、停业；做好山洪、滑坡等灾害的防御和抢险工作。",
            "areas": [
                {
                    "area_desc": "溧阳市埭头镇",
                    "geocodes": [{"value_name": "CPEAS Geographic Code", "value": "320481101000"}],
                }
            ],
        }
    ],
}


@contextmanager
def loopback_listener(port: int) -> Iterator[list[str]]:
    """Listen on 127.0.0.1:port and record every connection made to it (a real peer).

    Skips the test when the port is taken. Yields the list of recorded peer addresses.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(("127.0.0.1", port))
    except OSError as exc:
        server.close()
        pytest.skip(f"127.0.0.1:{port} is busy ({exc}); cannot watch for connections")
    server.listen(8)
    server.settimeout(0.05)
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=1)
        server.close()
