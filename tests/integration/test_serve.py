"""``nlptune serve``: the same JSON as ``nlptune predict``, dynamic batching, every class of bad
request (a JSON error, never a 500), 503 with Retry-After when the queue is full, graceful
shutdown, only finished runs; in-process (TestClient), on a real uvicorn on a free loopback
port, and the page at / in headless Chromium (skipped without /usr/bin/chromium)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import nlptune
from nlptune import cli

from ..conftest import FIXTURES, REPO, ner_data, tiny_config, translate_config

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from nlptune.predict import Predictor  # noqa: E402
from nlptune.serve import Limits  # noqa: E402
from nlptune.serve_app import create_app  # noqa: E402
from nlptune.serve_batch import Batcher, QueueFull  # noqa: E402

TAGGED = "The acting was very excellent, but the ending was terrible."
TEXTS = ["the film was lovely", "boring and dull acting", "great", "the music was very moving"]


@contextlib.contextmanager
def _env(factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPTUNE_CACHE", str(factory.getbasetemp() / "nlptune_cache"))
        yield


@pytest.fixture(scope="module")
def cls_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_cls") / "run"
    with _env(tmp_path_factory):
        nlptune.train(tiny_config(tiny_bert, out, trainer={"epochs": 2}))
    return out


@pytest.fixture(scope="module")
def ner_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_ner") / "run"
    config = tiny_config(
        tiny_bert, out, task={"type": "sequence_labelling"}, trainer={"epochs": 6, "lr": 3e-3}
    )
    config["data"] = ner_data()
    with _env(tmp_path_factory):
        nlptune.train(config)
    return out


@pytest.fixture(scope="module")
def qa_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_qa") / "run"
    config = tiny_config(
        tiny_bert, out, task={"type": "extractive_qa", "doc_stride": 8}, trainer={"epochs": 2}
    )
    config["data"] = {
        "train": str(FIXTURES / "squad_v1_train.json"),
        "dev": str(FIXTURES / "squad_v1_dev.json"),
    }
    with _env(tmp_path_factory):
        nlptune.train(config)
    return out


@contextlib.contextmanager
def _client(run: Path, **limits: Any) -> Iterator[TestClient]:
    app = create_app(Predictor.from_dir(run, device="cpu"), run, Limits(**limits))
    with TestClient(app) as client:  # runs the lifespan: the batcher starts and stops
        yield client


def _cli_predict(run: Path, inputs: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["predict", str(run), "--input", str(inputs)]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _same(served: list[dict[str, Any]], written: list[dict[str, Any]]) -> None:
    """Equal JSON but for float noise (inputs are batched differently)."""
    assert len(served) == len(written)
    for a, b in zip(served, written, strict=True):
        assert set(a) == set(b)
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], abs=1e-5)
            elif key != "entities":
                assert a[key] == b[key], key
        assert [e["text"] for e in a.get("entities", [])] == [
            e["text"] for e in b.get("entities", [])
        ]


# --- the answers ------------------------------------------------------------------------------


def test_predict_answers_what_nlptune_predict_writes(
    cls_run: Path, ner_run: Path, qa_run: Path, tmp_path: Path
) -> None:
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS) + "\n")
    with _client(cls_run) as client:
        served = client.post("/predict", json=TEXTS)
        one = client.post("/predict", json={"sentence": TEXTS[0], "id": "a1"})
    assert served.status_code == 200 and one.status_code == 200
    _same(served.json(), _cli_predict(cls_run, lines))
    assert one.json()["id"] == "a1" and one.json()["label"] == served.json()[0]["label"]

    lines.write_text(f"{TAGGED}\nPeter lives in Paris .\n")
    with _client(ner_run) as client:
        tagged = client.post("/predict", json=[TAGGED, "Peter lives in Paris ."]).json()
    _same(tagged, _cli_predict(ner_run, lines))
    assert tagged[0]["entities"], tagged  # the trained tagger finds the fixture's entities
    for ent in tagged[0]["entities"]:
        assert TAGGED[ent["start"] : ent["end"]] == ent["text"]

    questions = [
        {"id": "q1", "question": "what was the plot", "context": "the plot was funny ."},
        {"id": "q2", "question": "what was the cast", "context": "the cast was wonderful ."},
    ]
    qa_lines = tmp_path / "qa.jsonl"
    qa_lines.write_text("".join(json.dumps(q) + "\n" for q in questions))
    with _client(qa_run) as client:
        answers = client.post("/predict", json=questions).json()
    _same(answers, _cli_predict(qa_run, qa_lines))
    for q, a in zip(questions, answers, strict=True):
        assert q["context"][a["start"] : a["end"]] == a["answer"] and a["id"] == q["id"]


def _rounded(value: Any) -> Any:
    """JSON with its floats to 4 places (a batch of 2 pads differently from a batch of 1)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _other_task(task: str, tiny_bert: Path, tiny_t5: Path, out: Path) -> dict[str, Any]:
    """A short run of each task the tests above do not serve."""
    if task == "text_to_text":
        return translate_config(tiny_t5, out, trainer={"epochs": 1, "eval_every": None})
    config = tiny_config(tiny_bert, out, task={"type": task}, trainer={"epochs": 1})
    config["data"] = {
        "sentence_pair": {
            "train": str(FIXTURES / "pairs_train.tsv"),
            "dev": str(FIXTURES / "pairs_dev.tsv"),
            "text": "sentence1",
            "text_pair": "sentence2",
            "label": "label",
        },
        "word_sense": {
            "train": str(FIXTURES / "streusle_train.conllulex"),
            "dev": str(FIXTURES / "streusle_dev.conllulex"),
        },
        "masked_lm": {
            "train": str(FIXTURES / "corpus" / "train.txt"),
            "dev": str(FIXTURES / "corpus" / "dev.txt"),
        },
    }[task]
    return config


@pytest.mark.parametrize("task", ["sentence_pair", "word_sense", "text_to_text", "masked_lm"])
def test_every_task_serves_its_example(
    task: str, tiny_bert: Path, tiny_t5: Path, tmp_path: Path
) -> None:
    run = nlptune.train(_other_task(task, tiny_bert, tiny_t5, tmp_path / "run")).output_dir
    with _client(run) as client:
        info = client.get("/info").json()
        one = client.post("/predict", json=info["example"])
        both = client.post("/predict", json=[info["example"], info["example"]])
    assert info["task"] == task
    assert info["input"] == ("pair" if task == "sentence_pair" else "text")
    assert one.status_code == 200 and "error" not in one.json(), one.text
    assert both.status_code == 200 and _rounded(both.json()) == _rounded([one.json()] * 2)
    reference = Predictor.from_dir(run, device="cpu").predict([info["example"]])[0]
    assert one.json().keys() == reference.keys()


def test_health_info_docs_and_page(cls_run: Path) -> None:
    with _client(cls_run) as client:
        assert client.post("/predict", json="good").status_code == 200
        health = client.get("/health").json()
        info = client.get("/info").json()
        spec = client.get("/openapi.json").json()
        docs, page = client.get("/docs"), client.get("/")
    assert health["status"] == "ok" and health["requests"] == 1 and health["queued"] == 0
    assert info["task"] == "text_classification" and info["labels"] == ["neg", "pos"]
    assert info["model"]["class"] == "BertForSequenceClassification"
    assert info["metrics"]["dev"]["accuracy"] >= 0 and info["limits"]["max_items"] == 64
    body = spec["paths"]["/predict"]["post"]
    assert body["requestBody"]["content"]["application/json"]["examples"]
    assert {"200", "413", "422", "503"} <= set(body["responses"])
    assert {"/health", "/info"} <= set(spec["paths"])
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert page.status_code == 200 and "<textarea" not in page.text  # built from /info
    assert 'fetch("predict"' in page.text


# --- bad requests: each a JSON error with the right status, never a 500 -----------------------

BAD = [
    pytest.param(b"{not json", 422, "not valid JSON", id="not-json"),
    pytest.param(b"\xff\xfe\x00", 422, "not UTF-8", id="not-utf8"),
    pytest.param(b"", 422, "not valid JSON", id="empty-body"),
    pytest.param(b"[]", 422, "no inputs", id="empty-list"),
    pytest.param(b"5", 422, "expected a string", id="number"),
    pytest.param(b'{"sentence": 5}', 422, "'sentence' must be a string", id="field-type"),
    pytest.param(b'{"sentence": {"a": "b"}}', 422, "must be a string", id="field-object"),
    pytest.param(b'{"sentence": "x", "id": [1]}', 422, "'id' must be", id="id-type"),
    pytest.param(b'{"text_typo": "x"}', 422, "no 'sentence' field", id="missing-field"),
    pytest.param(b'["ok", null]', 422, "input 2", id="null-in-list"),
    pytest.param(json.dumps(["x"] * 9).encode(), 413, "at most 8", id="too-many-items"),
    pytest.param(json.dumps("y" * 201).encode(), 413, "201 characters", id="too-long-input"),
    pytest.param(
        json.dumps(["x", {"sentence": "z" * 300}]).encode(), 413, "input 2", id="long-2nd"
    ),
    pytest.param(b'"' + b"a" * 5000 + b'"', 413, "larger than 4096 bytes", id="body-too-large"),
]


@pytest.mark.parametrize(("body", "status", "says"), BAD)
def test_bad_request(cls_run: Path, body: bytes, status: int, says: str) -> None:
    with _client(cls_run, max_items=8, max_chars=200, max_body_bytes=4096) as client:
        response = client.post(
            "/predict", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_deep_json_and_streamed_body(cls_run: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with _client(cls_run, max_body_bytes=1 << 20) as client:
        nested = client.post("/predict", content=deep)
        streamed = client.post("/predict", content=iter([b'"' + b"a" * 700_000] * 2))
        ok = client.post("/predict", json="fine")
    assert nested.status_code == 422 and "nested too deeply" in nested.json()["error"]
    # no Content-Length (chunked): refused as it passes the limit
    assert streamed.status_code == 413 and "larger than" in streamed.json()["error"]
    assert ok.status_code == 200


def test_other_mistakes(cls_run: Path, tmp_path: Path) -> None:
    with _client(cls_run) as client:
        assert client.get("/predict").status_code == 405
        assert client.get("/nowhere").json() == {"error": "Not Found"}
        wrong = client.post("/predict?errors=maybe", json="x")
        kept = client.post("/predict?errors=record", json=["good", 7, {"sentence": "fine"}])
        one_bad = client.post("/predict?errors=record", json=7)
    assert wrong.status_code == 422 and "errors=maybe" in wrong.json()["error"]
    rows = kept.json()
    assert kept.status_code == 200 and [("error" in r) for r in rows] == [False, True, False]
    assert rows[1]["input"] == 2 and rows[1]["error"].startswith("input 2:")
    assert one_bad.status_code == 200 and "error" in one_bad.json()


def test_unfinished_run_missing_packages_and_busy_port(
    cls_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    half = tmp_path / "half"
    shutil.copytree(cls_run, half)
    (half / "meta.json").unlink()
    assert cli.main(["serve", str(half), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "not a finished run" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve", str(cls_run), "--port", str(port)]) == 2
        assert f"error: can't listen on 127.0.0.1:{port}" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert cli.main(["serve", str(cls_run)]) == 2
    assert "error: nlptune serve needs FastAPI and uvicorn: pip install 'nlptune[serve]'" in (
        capsys.readouterr().err
    )


# --- batching -------------------------------------------------------------------------------


def test_batcher_gathers_keeps_order_and_refuses_when_full() -> None:
    seen: list[int] = []

    def run(items: list[Any]) -> list[dict[str, Any]]:
        seen.append(len(items))
        time.sleep(0.05)
        return [{"x": x} for x in items]

    async def main() -> None:
        batcher = Batcher(run, max_batch=64, wait_s=0.05, max_queue=12)
        batcher.start()
        asks = [batcher.submit([f"{r}-{i}" for i in range(r % 3 + 1)]) for r in range(6)]
        answers = await asyncio.gather(*asks)
        for r, rows in enumerate(answers):  # each request its own rows, in order, once
            assert [row["x"] for row in rows] == [f"{r}-{i}" for i in range(r % 3 + 1)]
        assert seen == [12]  # arrived together: one batch
        first = asyncio.ensure_future(batcher.submit(list(range(10))))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as full:
            await batcher.submit([1, 2, 3])
        assert full.value.retry_after >= 1
        assert len(await first) == 10
        late = asyncio.ensure_future(batcher.submit(["last"]))
        await asyncio.sleep(0)
        await batcher.stop()  # a queued request is answered before the loop ends
        assert (await late) == [{"x": "last"}]

    asyncio.run(main())


def test_batcher_splits_by_max_batch_and_passes_errors() -> None:
    def run(items: list[Any]) -> list[dict[str, Any]]:
        if "boom" in items:
            raise ValueError("boom")
        return [{"x": x} for x in items]

    async def main() -> None:
        batcher = Batcher(run, max_batch=4, wait_s=0.02, max_queue=100)
        batcher.start()
        answers = await asyncio.gather(*[batcher.submit([i, i]) for i in range(5)])
        assert [len(a) for a in answers] == [2] * 5 and batcher.stats.largest_batch == 4
        with pytest.raises(ValueError, match="boom"):
            await batcher.submit(["boom"])
        assert await batcher.submit(["fine"]) == [{"x": "fine"}]
        await batcher.stop()

    asyncio.run(main())


def test_concurrent_requests_share_batches_and_503_when_full(cls_run: Path) -> None:
    with _client(cls_run, wait_ms=1000, max_queue=6) as client:

        def ask(i: int) -> Any:
            return client.post("/predict", json=[f"{TEXTS[i % 4]} {i}", "x"])

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(ask, range(8)))
        stats = client.get("/health").json()
    codes = sorted(r.status_code for r in replies)
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}, codes
    for r in replies:
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1 and "busy" in r.json()["error"]
        else:
            assert len(r.json()) == 2
    assert stats["batches"] < stats["requests"]  # requests were predicted together


def test_shape_buckets_keep_the_outputs(cls_run: Path, ner_run: Path, qa_run: Path) -> None:
    """Batches padded to bucketed shapes give the model's outputs for the real rows and tokens."""
    import torch

    from nlptune.data.batching import collate
    from nlptune.serve_shapes import ShapeBuckets, bucket

    assert [bucket(n) for n in (1, 2, 3, 5, 8, 9, 17, 64)] == [1, 2, 4, 8, 8, 16, 24, 64]
    inputs = {
        cls_run: ["good", "the film was lovely and the music very moving", "bad film"],
        ner_run: [TAGGED, "Peter lives in Paris .", "no"],
        qa_run: [{"question": "what was the plot", "context": "the plot was funny ."}] * 3,
    }
    for run, items in inputs.items():
        p = Predictor.from_dir(run, device="cpu")
        examples = [p.task.input_example(x, "test") for x in items]
        features = p.task.featurize(examples, p.text, labelled=False)
        batch = dict(collate(features, list(range(3)), p.text.pad_id, values=False))
        seen: list[tuple[int, ...]] = []

        def spy(p: Any = p, seen: list[tuple[int, ...]] = seen, **b: Any) -> Any:
            seen.append(tuple(b["input_ids"].shape))
            return p.model(**b)

        with torch.inference_mode():
            want = p.model(**batch)
            got = ShapeBuckets(spy, p.text.pad_id, 32)(**batch)
        assert seen[0][0] == 4 and (seen[0][1] % 16 == 0 or seen[0][1] == 32), seen
        for key, value in got.items():
            assert value.shape == want[key].shape
            assert torch.allclose(value, want[key], atol=1e-5), key


# --- a real uvicorn -------------------------------------------------------------------------


def _serve(run: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    """``nlptune serve RUN --port 0`` in a subprocess; its URL once it listens."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nlptune", "serve", str(run), "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    url = line.split(" at ")[1].split()[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "health", timeout=5).status_code == 200:
                return proc, url
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not answer /health")


def test_real_server_answers_and_shuts_down_gracefully(cls_run: Path) -> None:
    proc, url = _serve(cls_run, "--wait-ms", "1500")
    try:
        assert url.startswith("http://127.0.0.1:")
        with ThreadPoolExecutor(4) as pool:
            asks = [pool.submit(httpx.post, url + "predict", json=t, timeout=30) for t in TEXTS]
            replies = [a.result() for a in asks]
        assert all(r.status_code == 200 and "label" in r.json() for r in replies)
        assert httpx.get(url + "health").json()["batches"] == 1  # one batch of 4
        bad = httpx.post(url + "predict", content=b"{", timeout=30)
        assert bad.status_code == 422 and "error" in bad.json()
        # a request in flight (waiting 1.5 s for company) when SIGTERM comes is still answered
        with ThreadPoolExecutor(1) as pool:
            late = pool.submit(httpx.post, url + "predict", json=["last one"], timeout=30)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            reply = late.result()
        assert reply.status_code == 200 and reply.json()[0]["label"] in ("neg", "pos")
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None and "stopped (SIGTERM)" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# --- the page in headless Chromium ----------------------------------------------------------

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


class _Browser:
    """Headless Chromium driven through chromedriver's W3C WebDriver protocol."""

    def __init__(self, profile: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.driver = subprocess.Popen(
            [str(DRIVER), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base + "/status").json()["value"]["ready"]:
                    break
            time.sleep(0.1)
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=900,700",
        ]
        options = {"binary": str(CHROMIUM), "args": flags}
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        reply = httpx.request(method, self.base + path, json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        return reply.json()["value"]

    def do(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def find(self, css: str) -> list[str]:
        found = self.do("POST", "/elements", {"using": "css selector", "value": css})
        return [next(iter(e.values())) for e in found]  # the one key names the element

    def wait(self, css: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(css)
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {css} on the page")

    def text(self, element: str) -> str:
        return str(self.do("GET", f"/element/{element}/text"))

    def type(self, css: str, text: str) -> None:
        element = self.wait(css)[0]
        self.do("POST", f"/element/{element}/clear", {})
        self.do("POST", f"/element/{element}/value", {"text": text})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.do("DELETE", "")
        self.driver.terminate()
        self.driver.wait(timeout=10)


@contextlib.contextmanager
def _threaded_server(run: Path) -> Iterator[str]:
    """The app on a real uvicorn in this process, on a free loopback port."""
    import uvicorn

    from nlptune.serve import listen

    sock = listen("127.0.0.1", 0)
    app = create_app(Predictor.from_dir(run, device="cpu"), run)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.skipif(
    not (CHROMIUM.exists() and DRIVER.exists()), reason="needs chromium and chromium-driver"
)
def test_page_in_headless_chromium(
    cls_run: Path, ner_run: Path, qa_run: Path, tmp_path: Path
) -> None:
    shots = Path(os.environ.get("NLPTUNE_SCREENSHOTS", tmp_path))
    browser = _Browser(tmp_path / "profile")
    try:
        with _threaded_server(ner_run) as url:
            browser.do("POST", "/url", {"url": url})
            browser.type("#text", TAGGED)
            browser.do("POST", f"/element/{browser.wait('#go')[0]}/click", {})
            browser.wait("#result mark")
            shown = (
                "return [...document.querySelectorAll('#result mark')]"
                ".map(m => [m.firstChild.textContent, m.querySelector('small').textContent])"
            )
            marks = browser.do("POST", "/execute/sync", {"script": shown, "args": []})
            assert marks and all(m in TAGGED and kind in ("POS", "NEG") for m, kind in marks)
            _screenshot(browser, shots / "serve_ner.png")
        with _threaded_server(qa_run) as url:
            browser.do("POST", "/url", {"url": url})
            browser.type("#question", "what was the plot")
            browser.type("#context", "the plot was funny . the cast was wonderful .")
            browser.do("POST", f"/element/{browser.wait('#go')[0]}/click", {})
            marked = browser.text(browser.wait("#result mark")[0])
            assert marked and marked in "the plot was funny . the cast was wonderful ."
            _screenshot(browser, shots / "serve_qa.png")
        with _threaded_server(cls_run) as url:
            browser.do("POST", "/url", {"url": url})
            browser.type("#text", "the film was lovely")
            browser.do("POST", f"/element/{browser.wait('#go')[0]}/click", {})
            label = browser.text(browser.wait("#result .label b")[0])
            assert label in ("neg", "pos")
            assert browser.text(browser.wait("#result .score")[0]).startswith("0.")
            _screenshot(browser, shots / "serve_classification.png")
    finally:
        browser.close()


def _screenshot(browser: _Browser, path: Path) -> None:
    import base64

    path.write_bytes(base64.b64decode(browser.do("GET", "/screenshot")))
    assert path.stat().st_size > 1000
