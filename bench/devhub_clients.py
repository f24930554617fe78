"""Benchmark: 200 module clients (50 devices x 4 modules) on one dev hub.

The dev hub runs in its own process on a loopback address (so its RSS is
its own). Each module client connects over TLS with a SAS token, subscribes
to twin responses and desired patches, then does ROUNDS rounds of: twin GET,
reported PATCH, and receiving a desired patch sent through the service API.
The same rounds with a single client form the baseline of the same run; the
figures that matter are the ratios p50(200 clients) / p50(1 client).

The clients are plain asyncio MQTT clients built on ``devhub.mqtt_codec``
(the real SDK runs every client on one shared pipeline thread and is too
heavy for 200 in one process); they follow IoT Hub's client id, username and
topic conventions like the SDK does. Writes bench/results/devhub_clients.json.

Run: ``.venv/bin/python bench/devhub_clients.py`` (about half a minute).
"""

import asyncio
import datetime
import itertools
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devhub import auth
from devhub import mqtt_codec as mqtt
from devhub.client import ServiceClient, ServiceInfo, load_service_info

HOST = "127.0.99.2"
HOSTNAME = "devhub.local"
DEVICES = 50
MODULES_PER_DEVICE = 4
ROUNDS = 5
BASELINE_ROUNDS = 20
START_TIMEOUT_S = 30.0
WAIT_S = 60.0
RESULT = Path(__file__).parent / "results" / "devhub_clients.json"
_pids = itertools.count(1)


class BenchClient:
    """One module's MQTT connection, with request/response matching."""

    def __init__(self, device_id: str, module_id: str, key: str) -> None:
        self.device_id, self.module_id, self._key = device_id, module_id, key
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._patches: asyncio.Queue[float] = asyncio.Queue()
        self._acks: asyncio.Queue[mqtt.Packet] = asyncio.Queue()
        self._rids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self, info: ServiceInfo) -> float:
        """Open TLS, CONNECT and subscribe; return the CONNACK time in s."""
        started = time.perf_counter()
        context = ssl.create_default_context(cafile=str(info.ca_path))
        reader, self._writer = await asyncio.open_connection(
            info.mqtt_host, 8883, ssl=context, server_hostname=info.mqtt_host
        )
        self._reader_task = asyncio.create_task(self._read(reader))
        self._send(self._connect_packet())
        await asyncio.wait_for(self._acks.get(), WAIT_S)
        connected_s = time.perf_counter() - started
        filters = (
            ("$iothub/twin/res/#", 1),
            ("$iothub/twin/PATCH/properties/desired/#", 1),
        )
        self._send(mqtt.Subscribe(next(_pids) % 65535 + 1, filters))
        await asyncio.wait_for(self._acks.get(), WAIT_S)
        return connected_s

    async def twin_get(self) -> float:
        """Return the seconds a twin GET takes."""
        return await self._request("$iothub/twin/GET/", b"")

    async def patch_reported(self, round_no: int) -> float:
        """Return the seconds a reported PATCH takes."""
        body = json.dumps({"round": round_no, "module": self.module_id}).encode()
        return await self._request("$iothub/twin/PATCH/properties/reported/", body)

    async def next_desired(self) -> float:
        """Return the perf_counter time the next desired patch arrived."""
        return await asyncio.wait_for(self._patches.get(), WAIT_S)

    async def close(self) -> None:
        """Send DISCONNECT and close."""
        if self._writer is not None:
            self._send(mqtt.Disconnect())
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def _request(self, prefix: str, body: bytes) -> float:
        rid = str(next(self._rids))
        future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        started = time.perf_counter()
        packet_id = next(_pids) % 65535 + 1
        self._send(
            mqtt.Publish(f"{prefix}?$rid={rid}", body, qos=1, packet_id=packet_id)
        )
        await asyncio.wait_for(future, WAIT_S)
        return time.perf_counter() - started

    def _connect_packet(self) -> mqtt.Connect:
        client_id = f"{self.device_id}/{self.module_id}"
        uri = f"{HOSTNAME}/devices/{self.device_id}/modules/{self.module_id}"
        token = auth.mint_sas_token(uri, self._key, expiry=int(time.time()) + 3600)
        return mqtt.Connect(
            client_id=client_id,
            clean_session=False,
            keep_alive_s=300,
            username=f"{HOSTNAME}/{client_id}/?api-version=2021-04-12",
            password=token.encode(),
        )

    def _send(self, packet: mqtt.Packet) -> None:
        assert self._writer is not None
        self._writer.write(mqtt.encode(packet))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            packet = await mqtt.read_packet(reader, max_bytes=1 << 20)
            if isinstance(packet, mqtt.Publish):
                self._on_publish(packet)
            elif isinstance(packet, mqtt.ConnAck | mqtt.SubAck):
                self._acks.put_nowait(packet)

    def _on_publish(self, packet: mqtt.Publish) -> None:
        if packet.topic.startswith("$iothub/twin/PATCH/properties/desired/"):
            self._patches.put_nowait(time.perf_counter())
            return
        rid = packet.topic.partition("$rid=")[2].partition("&")[0]
        future = self._waiting.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(packet.topic)


async def run_rounds(
    clients: list[BenchClient], service: ServiceClient, rounds: int
) -> dict[str, list[float]]:
    """Run ``rounds`` rounds on every client at once; return timings (s)."""
    timings: dict[str, list[float]] = {
        "twin_get": [],
        "reported_patch": [],
        "desired": [],
    }

    async def one(client: BenchClient, round_no: int) -> None:
        timings["twin_get"].append(await client.twin_get())
        timings["reported_patch"].append(await client.patch_reported(round_no))
        patch: dict[str, object] = {"properties": {"desired": {"round": round_no}}}
        sent = time.perf_counter()
        waiter = asyncio.create_task(client.next_desired())
        await asyncio.to_thread(
            service.update_module_twin, client.device_id, client.module_id, patch
        )
        timings["desired"].append(await waiter - sent)

    for round_no in range(rounds):
        await asyncio.gather(*(one(c, round_no) for c in clients))
    return timings


async def connect_all(
    info: ServiceInfo, modules: list[tuple[str, str, str]]
) -> tuple[list[BenchClient], list[float], float]:
    """Connect a client per module at once; return them and connect times."""
    clients = [BenchClient(*module) for module in modules]
    started = time.perf_counter()
    connect_s = await asyncio.gather(*(c.connect(info) for c in clients))
    return clients, list(connect_s), time.perf_counter() - started


def register(service: ServiceClient) -> list[tuple[str, str, str]]:
    """Register DEVICES x MODULES_PER_DEVICE modules; return id/id/key."""
    modules = []
    for device_no in range(DEVICES):
        device_id = f"bench-{device_no:02d}"
        service.add_device(device_id)
        for module_no in range(MODULES_PER_DEVICE):
            module = service.add_module(device_id, f"m{module_no}")
            key = module["authentication"]["symmetricKey"]["primaryKey"]  # type: ignore[index]
            modules.append((device_id, f"m{module_no}", str(key)))
    return modules


def summarize(samples: list[float]) -> dict[str, float]:
    """Return p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "n": len(ordered),
    }


def rss_mib(pid: int) -> float:
    """Return the resident set size of ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def bench(hub_pid: int, info: ServiceInfo) -> dict[str, Any]:
    """Run the baseline and the 200-client phase; return the figures."""
    service = ServiceClient.from_service_info(info)
    modules = await asyncio.to_thread(register, service)
    rss_idle = rss_mib(hub_pid)

    [single], single_connect, _ = await connect_all(info, modules[:1])
    baseline = await run_rounds([single], service, BASELINE_ROUNDS)
    await single.close()

    clients, connect_s, connect_all_s = await connect_all(info, modules)
    rss_connected = rss_mib(hub_pid)
    load = await run_rounds(clients, service, ROUNDS)
    rss_after = rss_mib(hub_pid)
    for client in clients:
        await client.close()

    ops: dict[str, dict[str, Any]] = {}
    for name in ("twin_get", "reported_patch", "desired"):
        one, many = summarize(baseline[name]), summarize(load[name])
        ops[name] = {
            "clients_1": one,
            f"clients_{len(clients)}": many,
            "ratio_p50": round(many["p50_ms"] / one["p50_ms"], 2),
        }
    return {
        "clients": len(clients),
        "devices": DEVICES,
        "modules_per_device": MODULES_PER_DEVICE,
        "rounds_per_client": ROUNDS,
        "baseline_rounds": BASELINE_ROUNDS,
        "connect": {
            "clients_1": summarize(single_connect),
            f"clients_{len(clients)}": summarize(connect_s),
            "all_connected_s": round(connect_all_s, 3),
            "ratio_p50": round(
                statistics.median(connect_s) / statistics.median(single_connect), 2
            ),
        },
        "operations": ops,
        "hub_rss_mib": {
            "registry_loaded": rss_idle,
            "all_connected": rss_connected,
            "after_rounds": rss_after,
        },
    }


def machine() -> dict[str, Any]:
    """Return what the figures ran on."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def start_hub(state_dir: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m devhub`` on HOST and wait for its service.json."""
    hub = subprocess.Popen(
        [sys.executable, "-m", "devhub", "--state-dir", str(state_dir), "--host", HOST],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (state_dir / "service.json").exists():
        if hub.poll() is not None or time.monotonic() > deadline:
            hub.kill()
            raise SystemExit(f"dev hub on {HOST} did not start; is 8883 taken there?")
        time.sleep(0.1)
    return hub


def main() -> int:
    """Run the benchmark, print and write the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "hub"
        hub = start_hub(state_dir)
        try:
            started = time.perf_counter()
            figures = asyncio.run(bench(hub.pid, load_service_info(state_dir)))
            figures["wall_s"] = round(time.perf_counter() - started, 1)
        finally:
            hub.terminate()
            hub.wait(timeout=10)
    result = {
        "benchmark": "devhub_clients",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "client": "asyncio MQTT on devhub.mqtt_codec (not the SDK), TLS 1.2+",
        **figures,
    }
    text = json.dumps(result, indent=2)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
