"""Load test of ``nlptune serve`` on loopback, against a naive server that calls a transformers
``pipeline()`` once per request.

Both servers run at once, each in its own process on 127.0.0.1 (a free port) with the same run's
model, and each level is measured on one, then the other. For each level of concurrency
(``--clients``, default 1, 8, 32) the client (this process) keeps that many
requests in flight, one sentence each (SST-2 dev sentences, cycled), until ``--requests``
requests have been answered or ``--seconds`` have passed, whichever is first. Every request
carries a unique id; the answers are checked: none lost, none answered twice, each with its own
id. The server's RSS is read after a warm-up and after each level, and the last level runs
``--soak`` more times (memory stable: once the largest batches have been seen, RSS must not
grow with the requests served).

    HF_HUB_OFFLINE=1 python bench/serve.py runs/demo --requests 300 --seconds 30

Prints a table (p50/p99 latency in ms, requests/s) and writes JSON (``--out``, default
bench/results/serve.json). Loopback only; bounded in requests and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
FALLBACK = ["a gripping, funny film", "dull and far too long", "the cast is wonderful"]

NAIVE = """
import sys
from fastapi import FastAPI, Request
import uvicorn
from transformers import pipeline

model, port = sys.argv[1], int(sys.argv[2])
classify = pipeline("text-classification", model=model, device="cpu")
app = FastAPI()

@app.post("/predict")
def predict(body: dict) -> dict:  # FastAPI runs it in its thread pool, one call per request
    out = classify(body["text"])[0]
    return {"id": body.get("id"), "label": out["label"], "score": out["score"]}

@app.get("/health")
def health() -> dict:
    return {"status": "ok"}

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    kind: str, run: Path, threads: int, options: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """The server process (``nlptune`` or ``naive``) and its base URL, once it answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = str(REPO / "src")
    if kind == "nlptune":
        cmd = [sys.executable, "-m", "nlptune", "serve", str(run), "--port", str(port), *options]
    else:
        cmd = [sys.executable, "-c", NAIVE, str(run / "model"), str(port)]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the {kind} server stopped (exit {proc.returncode})")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the {kind} server did not start")


def rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss / 2**20)


async def load(
    url: str, kind: str, texts: list[str], clients: int, total: int, seconds: float, tag: str
) -> dict[str, Any]:
    """``clients`` workers send one request at a time until ``total`` requests or ``seconds``;
    returns latencies and the check of the answers."""
    import httpx

    sent: list[str] = []
    answered: dict[str, int] = {}
    wrong: list[str] = []
    latencies: list[float] = []
    failures: dict[str, int] = {}
    refused: set[str] = set()  # answered with an error status, or the connection failed
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(client: httpx.AsyncClient) -> None:
        while len(sent) < total and time.perf_counter() < stop_at:
            rid = f"{tag}-{len(sent)}"
            sent.append(rid)
            text = texts[len(sent) % len(texts)]
            body = {"id": rid, "text": text} if kind == "naive" else {"id": rid, "sentence": text}
            started = time.perf_counter()
            try:
                reply = await client.post(url + "/predict", json=body)
            except httpx.HTTPError as err:
                failures[type(err).__name__] = failures.get(type(err).__name__, 0) + 1
                refused.add(rid)
                continue
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 200:
                failures[str(reply.status_code)] = failures.get(str(reply.status_code), 0) + 1
                refused.add(rid)
                continue
            got = str(reply.json().get("id"))
            answered[got] = answered.get(got, 0) + 1
            if got != rid:
                wrong.append(rid)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*[worker(client) for _ in range(clients)])
    wall = time.perf_counter() - started
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return {
        "clients": clients,
        "requests": len(sent),
        "answered": sum(answered.values()),
        "lost": len(set(sent) - set(answered) - refused),
        "answered_twice": sum(1 for n in answered.values() if n > 1),
        "wrong_id": len(wrong),
        "failures": failures,
        "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else None,
        "requests_per_s": round(len(latencies) / wall, 1),
        "seconds": round(wall, 2),
    }


def bench(run: Path, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    """Every server up at once, each level measured on each server in turn (on a shared
    machine, a slow minute then costs both alike)."""
    options = ["--wait-ms", str(args.wait_ms)] if args.wait_ms is not None else []
    servers = {kind: start(kind, run, args.threads, options) for kind in args.servers}
    results: dict[str, Any] = {kind: {"levels": []} for kind in servers}
    try:
        for kind, (proc, url) in servers.items():
            asyncio.run(load(url, kind, texts, 4, 16, 30, "warm"))  # first batches, lazy init
            results[kind]["rss_mb_after_warmup"] = round(rss_mb(proc.pid), 1)
        for clients in [*args.clients, *[args.clients[-1]] * args.soak]:
            for kind, (proc, url) in servers.items():
                result = asyncio.run(
                    load(url, kind, texts, clients, args.requests, args.seconds, f"c{clients}")
                )
                result["rss_mb"] = round(rss_mb(proc.pid), 1)
                results[kind]["levels"].append(result)
                print(f"  {kind} {clients:>3} clients: {json.dumps(result)}", file=sys.stderr)
        return results
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=60)


def table(results: dict[str, Any]) -> str:
    head = f"{'server':<8} {'clients':>7} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} "
    head += f"{'req/s':>7} {'lost':>5} {'twice':>5} {'RSS MB':>7}"
    lines = [head, "-" * len(head)]
    for kind in ("nlptune", "naive"):
        if kind not in results:
            continue
        for r in results[kind]["levels"]:
            lines.append(
                f"{kind:<8} {r['clients']:>7} {r['answered']:>8} {r['p50_ms']:>8} "
                f"{r['p99_ms']:>8} {r['requests_per_s']:>7} {r['lost']:>5} "
                f"{r['answered_twice']:>5} {r['rss_mb']:>7}"
            )
    return "\n".join(lines)


def sentences(limit: int = 872) -> list[str]:
    if not SST2.is_file():
        return FALLBACK
    rows = SST2.read_text(encoding="utf-8").splitlines()[1:]
    return [r.split("\t")[0].strip() for r in rows[:limit] if r.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished text_classification run")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=300, help="most requests per level")
    parser.add_argument("--seconds", type=float, default=30, help="most seconds per level")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per server")
    parser.add_argument("--servers", nargs="+", default=["nlptune", "naive"])
    parser.add_argument("--wait-ms", type=float, help="nlptune serve --wait-ms (its default)")
    parser.add_argument(
        "--soak", type=int, default=1, help="runs of the last level again (RSS must stay flat)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve.json")
    args = parser.parse_args()
    texts = sentences()
    results: dict[str, Any] = {
        "run": str(args.run),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (client and server share them)",
        "settings": {k: v for k, v in vars(args).items() if k not in ("run", "out")},
        "texts": f"{len(texts)} SST-2 dev sentences" if SST2.is_file() else "3 sentences",
    }
    results.update(bench(args.run, args, texts))
    for kind in args.servers:
        bad = [r for r in results[kind]["levels"] if r["lost"] or r["answered_twice"]]
        results[kind]["all_answered_once"] = not bad and all(
            not r["wrong_id"] and not r["failures"] for r in results[kind]["levels"]
        )
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
