"""Requests per second the emulator serves over a real socket.

Starts the emulator (uvicorn, one process, logging as ``provisioner emulator``
does, to /dev/null) in a child process, registers an application of ``--devices``
devices through the API, then keeps ``--concurrency`` V1-signed
QueryPageByApplyId requests (PageSize 50, pages spread over the application) in
flight for ``--seconds`` from one or more client processes. QPS limits are
scaled out of the way. Prints requests/s, the server's CPU use and latency
percentiles.

    .venv/bin/python benchmarks/emulator_rps.py [--devices 5000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import psutil

from provisioner.api.signing import format_timestamp, v1_signature, v1_string_to_sign
from provisioner.emulator.config import EmulatorConfig

KEY_ID, SECRET = "benchid", "benchsecret"


def signed_query(action: str, params: dict[str, str], method: str = "GET") -> str:
    query = {
        "Action": action,
        "Version": "2018-01-20",
        "AccessKeyId": KEY_ID,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex,
        "Timestamp": format_timestamp(datetime.now(UTC)),
        "Format": "JSON",
        **params,
    }
    query["Signature"] = v1_signature(SECRET, v1_string_to_sign(method, query))
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())


def run_server(port: int) -> None:
    with open(os.devnull, "w") as sink:
        sys.stdout = sink
        from provisioner.emulator.serve import serve

        config = EmulatorConfig(
            accounts={KEY_ID: SECRET}, qps_scale=10_000, check_seconds=0.2, create_seconds=0.2
        )
        serve(config, host="127.0.0.1", port=port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(port: int) -> Iterator[multiprocessing.Process]:
    process = multiprocessing.get_context("spawn").Process(target=run_server, args=(port,))
    process.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("emulator did not start")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.join(10)


def setup(base: str, devices: int) -> int:
    """A product and one application of ``devices`` created devices; returns the ApplyId."""
    with httpx.Client(base_url=base, timeout=30) as client:

        def call(action: str, params: dict[str, str], form: dict[str, str] | None = None) -> Any:
            if form is None:
                body = client.get("/?" + signed_query(action, params)).json()
            else:
                query = signed_query(action, {**params, **form}, method="POST")
                # Sign over query + form, then move the form parameters into the body.
                pairs = dict(p.split("=", 1) for p in query.split("&"))
                in_form = {k: pairs.pop(quote(k, safe="")) for k in form}
                body = client.post(
                    "/?" + "&".join(f"{k}={v}" for k, v in pairs.items()),
                    content="&".join(f"{quote(k, safe='')}={v}" for k, v in in_form.items()),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ).json()
            assert body.get("Success") is True, body
            return body

        pk = call(
            "CreateProduct", {"ProductName": f"Bench_{uuid.uuid4().hex[:8]}", "NodeType": "0"}
        )
        product_key = pk["ProductKey"]
        names = {f"DeviceNameList.{i}.DeviceName": f"bench-{i:06d}" for i in range(1, devices + 1)}
        apply_id = str(
            call("BatchCheckDeviceNames", {"ProductKey": product_key}, names)["Data"]["ApplyId"]
        )
        query = {"ProductKey": product_key, "ApplyId": apply_id}
        for wanted, then in (
            ("CHECK_SUCCESS", "BatchRegisterDeviceWithApplyId"),
            ("CREATE_SUCCESS", None),
        ):
            for _ in range(600):
                status = call("QueryBatchRegisterDeviceStatus", query)["Data"]["Status"]
                if status == wanted:
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"application stuck before {wanted}")
            if then:
                call(then, query)
        return int(apply_id)


async def load(
    base: str, apply_id: int, pages: int, concurrency: int, seconds: float
) -> tuple[list[float], float, float]:
    """``concurrency`` workers, each with its own keep-alive connection (httpx's pool
    costs the client more than the emulator's work as the pool grows)."""
    # Sign ahead so that the client's CPU goes to HTTP, not to HMAC (nonces stay unique).
    urls = [
        "/?"
        + signed_query(
            "QueryPageByApplyId",
            {"ApplyId": str(apply_id), "PageSize": "50", "CurrentPage": str(n % pages + 1)},
        )
        for n in range(int(seconds * 1500))
    ]
    latencies: list[float] = []
    errors = 0
    cpu, started = time.process_time(), time.perf_counter()
    stop = started + seconds

    async def worker(offset: int) -> None:
        nonlocal errors
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            n = offset
            while time.perf_counter() < stop:
                if n < len(urls):
                    url = urls[n]
                else:
                    page = {"CurrentPage": str(n % pages + 1)}
                    url = "/?" + signed_query(
                        "QueryPageByApplyId", {"ApplyId": str(apply_id), "PageSize": "50", **page}
                    )
                n += concurrency
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or b'"Success":true' not in response.content:
                    errors += 1

    async with anyio.create_task_group() as tg:
        for i in range(concurrency):
            tg.start_soon(worker, i)
    if errors:
        raise RuntimeError(f"{errors} bad responses")
    return latencies, time.perf_counter() - started, time.process_time() - cpu


def client_process(
    base: str, apply_id: int, pages: int, concurrency: int, seconds: float, out: Any
) -> None:
    out.put(anyio.run(load, base, apply_id, pages, concurrency, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight, in all")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(port) as process:
        apply_id = setup(base, args.devices)
        pages = args.devices // 50
        server = psutil.Process(process.pid)
        server_cpu = sum(server.cpu_times()[:2])
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        per_client = max(1, args.concurrency // args.clients)
        clients = [
            ctx.Process(
                target=client_process, args=(base, apply_id, pages, per_client, args.seconds, queue)
            )
            for _ in range(args.clients)
        ]
        for c in clients:
            c.start()
        latencies: list[float] = []
        elapsed = client_cpu = 0.0
        for _ in clients:
            got, seconds, cpu_seconds = queue.get()
            latencies.extend(got)
            elapsed = max(elapsed, seconds)
            client_cpu += cpu_seconds
        for c in clients:
            c.join()
        server_cpu = sum(server.cpu_times()[:2]) - server_cpu

    latencies.sort()
    n = len(latencies)
    print(f"devices in the application : {args.devices} ({pages} pages of 50)")
    print(f"concurrency / clients      : {per_client * args.clients} / {args.clients}")
    print(f"requests                   : {n} in {elapsed:.2f} s")
    print(f"requests/s                 : {n / elapsed:,.0f}")
    print(f"devices exported/s         : {50 * n / elapsed:,.0f}")
    per_request = server_cpu / n
    print(
        f"server CPU per request     : {1000 * per_request:.3f} ms"
        f" (one core could serve ~{1 / per_request:,.0f} requests/s)"
    )
    print(f"client CPU                 : {100 * client_cpu / elapsed:.0f}% of one core")
    print(
        "latency ms p50/p90/p99     : "
        f"{1000 * statistics.median(latencies):.1f} / {1000 * latencies[int(n * 0.9)]:.1f}"
        f" / {1000 * latencies[int(n * 0.99)]:.1f}"
    )


if __name__ == "__main__":
    main()
