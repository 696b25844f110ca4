"""What `sync_interval: always` costs on this machine: JetStream publish throughput against a
nats-server with the default (fsync every 2 minutes) and with `always` (fsync before every PubAck).

    .venv/bin/python tests/faults/measure_sync.py [--messages 20000]

Prints a Markdown table (used in docs/reliability.md). Loopback only; the servers are killed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import nats

from iioe_tools.embedded import free_port, nats_server_binary, wait_for_port


async def measure(sync_interval: str | None, messages: int, sync_messages: int, payload: bytes) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix=f"iioe-sync-{sync_interval or 'default'}-"))
    port = free_port()
    sync_line = f"  sync_interval: {sync_interval}\n" if sync_interval else ""
    (root / "nats.conf").write_text(f'listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: "{root}"\n{sync_line}}}\n')
    proc = _start(root / "nats.conf")
    try:
        assert wait_for_port(port, 15), "nats-server did not start"
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        js = nc.jetstream(publish_async_max_pending=1000)
        await js.add_stream(name="BENCH", subjects=["bench.>"])
        t0 = time.perf_counter()
        for i in range(messages):
            await js.publish_async("bench.a", payload, headers={"Nats-Msg-Id": f"a{i}"})
        await js.publish_async_completed()
        async_rate = messages / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(sync_messages):
            await js.publish("bench.s", payload, headers={"Nats-Msg-Id": f"s{i}"})
        sync_rate = sync_messages / (time.perf_counter() - t0)
        await nc.close()
        return {"publish_async": async_rate, "publish": sync_rate}
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def _start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [nats_server_binary(), "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sync-messages", type=int, default=3_000)
    args = parser.parse_args()
    payload = json.dumps({"specversion": "1.0", "id": "x" * 36, "data": {"k": "v" * 400}}).encode()
    rows = []
    for setting in (None, "always"):
        result = await measure(setting, args.messages, args.sync_messages, payload)
        rows.append((setting or "default (2 min)", result))
    base = rows[0][1]
    print(
        f"| sync_interval | publish_async msg/s ({args.messages}, ≤1000 in flight) "
        f"| publish msg/s ({args.sync_messages}, one at a time) |"
    )
    print("|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['publish_async']:,.0f} ({r['publish_async'] / base['publish_async']:.2f}×) "
            f"| {r['publish']:,.0f} ({r['publish'] / base['publish']:.2f}×) |"
        )
    print(f"\n{len(payload)}-byte messages, file storage, R1, one run.")


if __name__ == "__main__":
    asyncio.run(main())
