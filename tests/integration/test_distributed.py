"""Two CPU processes (accelerate launch, gloo) give the metrics of one process.

Every launch takes a free port found at run time (no fixed port: parallel test runs on one
machine would collide). ``--multi_gpu --num_processes 2`` starts two gloo processes on a CPU-only
machine; accelerate's ``--cpu --num_processes 2`` would start one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import FIXTURES, REPO, static_config, tiny_config, translate_config

ACCELERATE_CONFIGS = REPO / "configs" / "accelerate"


def _free_port() -> int:
    """A TCP port nothing listens on now (bound to port 0, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _python(processes: int) -> list[str]:
    """The command that starts a Python program on ``processes`` CPU processes."""
    if processes == 1:
        return [sys.executable]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",  # on a CPU-only machine: gloo processes (--cpu would start one)
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
    ]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **extra}


def _train(
    argv: list[str], env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _train_here(*argv: str) -> None:
    """``nlptune ARGV`` in this process (one process: no launcher, no interpreter start-up)."""
    from nlptune import cli

    assert cli.main(list(argv)) == 0


def _write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _metrics(folder: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads((folder / "metrics.json").read_text())
    return metrics


def _log(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines()]


def _case_config(task: str, strategy: str, model: Path, out: Path, request: Any) -> dict[str, Any]:
    """The run config of one test_two_processes_equal_one case."""
    config = tiny_config(
        model,
        out,
        strategy={"type": strategy},
        trainer={"epochs": 8, "batch_size": 8, "eval_every": 12},
    )
    if task == "sequence_labelling":  # windows of one sentence are gathered in order
        config["task"] = {"type": task}
        config["data"] = {
            "train": str(FIXTURES / "ner_train.conll"),
            "dev": str(FIXTURES / "ner_dev.conll"),
            "tag_column": 3,
        }
        config["trainer"].update(epochs=2, eval_every=10)
    if task == "text_to_text":  # generation: rows of different widths are gathered
        config = translate_config(
            request.getfixturevalue("tiny_t5"), out, trainer={"epochs": 20, "eval_every": 20}
        )
    if task == "static_vectors":  # a BiLSTM with characters and the LM loss, no dropout
        config = static_config(
            request.getfixturevalue("glove_file"),
            out,
            backbone={"chars": "cnn", "lm_weight": 0.3, "dropout": 0.0},
            trainer={"epochs": 8, "batch_size": 8, "eval_every": 12},
        )
    if task == "masked_lm":  # masks drawn per item: the same whatever the process count
        config["task"] = {"type": task, "objectives": ["mlm", "nsp"]}
        config["data"] = {
            "train": str(FIXTURES / "corpus" / "train.txt"),
            "dev": str(FIXTURES / "corpus" / "dev.txt"),
        }
        config["trainer"].update(epochs=3, eval_every=10)
    if task == "extractive_qa":  # a context makes several windows, stitched back per question
        config["task"] = {"type": task, "doc_stride": 8}
        config["data"] = {
            "train": str(FIXTURES / "squad_v1_train.json"),
            "dev": str(FIXTURES / "squad_v1_dev.json"),
        }
        config["trainer"].update(epochs=1, batch_size=16, lr=3e-3, eval_every=20)
    if task == "word_sense":  # one target (a preposition, maybe a multi-word one) per item
        config["task"] = {"type": task}
        config["data"] = {
            "train": str(FIXTURES / "streusle_train.conllulex"),
            "dev": str(FIXTURES / "streusle_dev.conllulex"),
        }
        config["trainer"].update(epochs=4, batch_size=16, lr=3e-3, eval_every=10)
    return config


@pytest.mark.parametrize(
    ("task", "strategy"),
    [
        ("text_classification", "full"),
        ("text_classification", "frozen"),
        ("sequence_labelling", "full"),
        ("text_to_text", "full"),
        ("static_vectors", "full"),
        ("masked_lm", "full"),
        ("extractive_qa", "full"),
        ("word_sense", "full"),
    ],
)
def test_two_processes_equal_one(
    tiny_bert_no_dropout: Path, tmp_path: Path, task: str, strategy: str, request: Any
) -> None:
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        config = _case_config(task, strategy, tiny_bert_no_dropout, out, request)
        path = _write(config, tmp_path / f"p{n}.yaml")
        if n == 1:
            _train_here("train", str(path))
        else:
            done = _train([*_python(n), "-m", "nlptune", "train", str(path)], _env())
            # the metrics on stdout once (the main process), as under one process
            assert [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")] == [
                _metrics(out)
            ]
        runs[n] = _metrics(out)
    one, two = runs[1], runs[2]
    assert one["steps"] == two["steps"] and one["best_step"] == two["best_step"]
    if (task, strategy) in (("text_classification", "full"), ("static_vectors", "full")):
        assert one["dev"]["accuracy"] > 0.6  # trained, so equal metrics mean something
    if task == "text_to_text":
        assert one["dev"]["bleu"] > 20
    if task == "extractive_qa":  # every dev question scored once, by both
        assert one["dev"]["total"] == two["dev"]["total"] == 48
        assert one["dev"]["f1"] > 5
    if task == "word_sense":
        assert one["dev"]["accuracy"] > 0.3
    # with next-sentence prediction (a mean over pairs, weighted by masked tokens like the
    # masked-LM loss) the gradient is not exactly one process's: equal to 2e-5 (transformers
    # before 4.51 draws the NSP head differently: 1.1e-5 apart there, 4e-7 from 4.51), and the
    # NSP accuracy, at chance on this tiny data, flips with the last digits
    close: dict[str, Any] = {"rel": 2e-5} if task == "masked_lm" else {"abs": 1e-4}
    assert set(two["dev"]) == set(one["dev"])
    for key, value in one["dev"].items():
        if key != "nsp_accuracy":
            assert two["dev"][key] == pytest.approx(value, **close), key
    first, log = _log(tmp_path / "p1"), _log(tmp_path / "p2")
    losses = [[r for r in run if r["event"] == "train"][0] for run in (first, log)]
    for key in losses[0]:  # the logged losses are the global ones, not one process's share
        # (token-mean losses are weighted by each share's tokens: the same global mean; the
        # next-sentence loss, a mean over pairs, is weighted by masked tokens too)
        if key.startswith("loss"):
            rel = 2e-2 if key == "loss_nsp" else 1e-4
            assert losses[1][key] == pytest.approx(losses[0][key], rel=rel), key
    assert sum(r["event"] == "eval" for r in log) == sum(r["event"] == "eval" for r in first)


# Trains a config as `nlptune train` does, recording what this process did (to RECORD.RANK.json):
# the feature-cache lookups ("built" or "hit"), the feature files it wrote, and the dev indices
# every evaluation was given; with STOP_AT > 0 the process kills itself (SIGKILL, as a crash)
# once that optimizer step (and the checkpoint of it) is done.
DRIVER = r"""
import json, os, signal, sys

import nlptune
from nlptune.data import features
from nlptune.tasks.text_classification import TextClassification

config, record, stop_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = {"cache": [], "writes": 0, "evaluations": []}
cached, save, evaluate = features.cached, features.Features.save, TextClassification.evaluate


def counted_cached(*args, **kwargs):
    found = cached(*args, **kwargs)
    seen["cache"].append("hit" if found[1] else "built")
    return found


def counted_save(self, *args, **kwargs):
    seen["writes"] += 1
    return save(self, *args, **kwargs)


def counted_evaluate(self, rows, examples, feats):
    given = []

    def tap():
        for i, row in rows:
            given.append(int(i))
            yield i, row

    try:
        return evaluate(self, tap(), examples, feats)
    finally:
        seen["evaluations"].append(given)


def write():
    with open(f"{record}.{os.environ.get('RANK', '0')}.json", "w") as f:
        json.dump(seen, f)


def stop(state):
    if state.step == stop_at:
        write()
        os.kill(os.getpid(), signal.SIGKILL)


features.cached, features.Features.save = counted_cached, counted_save
TextClassification.evaluate = counted_evaluate
nlptune.train(config, callbacks=[stop])
write()
"""


def _drive(
    tmp_path: Path, processes: int, config: Path, record: Path, stop_at: int = 0, **env: str
) -> subprocess.CompletedProcess[str]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    argv = [*_python(processes), str(driver), str(config), str(record), str(stop_at)]
    return _train(argv, _env(**env), check=not stop_at)


def _records(record: Path, processes: int) -> list[dict[str, Any]]:
    return [json.loads(Path(f"{record}.{rank}.json").read_text()) for rank in range(processes)]


def _files(folder: Path) -> set[str]:
    """Every file under ``folder`` (relative paths); a TensorBoard event file's name without its
    time, host and process id."""
    names = set()
    for path in folder.rglob("*"):
        if path.is_file():
            name = str(path.relative_to(folder))
            names.add(re.sub(r"events\.out\.tfevents\..*$", "events.out.tfevents.*", name))
    return names


def test_an_odd_dev_set_is_scored_once_and_the_main_process_writes_alone(
    tiny_bert_no_dropout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """23 dev examples in batches of 5 (5 batches) under 2 processes: accelerate pads the last
    process's share with repeated examples, which must not be counted twice. The features are
    built once (the main process first, the other reads them from the cache), and only the main
    process writes the run folder: it holds the files of a 1-process run."""
    n = 23
    rows = (FIXTURES / "sentiment_dev.tsv").read_text().splitlines()
    dev = tmp_path / "dev.tsv"
    dev.write_text("\n".join(rows[: n + 1]) + "\n")  # the header and n examples
    paths = {}
    for procs in (1, 2):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / f"p{procs}",
            data={"dev": str(dev)},
            trainer={
                "epochs": 8,
                "batch_size": 8,
                "eval_every": 12,
                "eval_batch_size": 5,
                "tensorboard": True,
                "keep_checkpoints": True,
            },
        )
        paths[procs] = _write(config, tmp_path / f"p{procs}.yaml")
    monkeypatch.setenv("NLPTUNE_CACHE", str(tmp_path / "cache1"))
    _train_here("train", str(paths[1]))
    record = tmp_path / "record"
    # an empty cache: the 2-process run builds the features
    done = _drive(tmp_path, 2, paths[2], record, NLPTUNE_CACHE=str(tmp_path / "cache2"))
    one, two = _metrics(tmp_path / "p1"), _metrics(tmp_path / "p2")
    assert one["steps"] == two["steps"] == 96 and one["best_step"] == two["best_step"]
    assert one["dev"]["accuracy"] > 0.6  # trained: equal metrics mean something
    assert set(two["dev"]) == set(one["dev"])
    for key, value in one["dev"].items():
        assert two["dev"][key] == pytest.approx(value, abs=1e-4), key
    main, other = _records(record, 2)
    # every evaluation (8 during training, the final one) was given each dev example once, on
    # every process
    for seen in (main, other):
        assert len(seen["evaluations"]) == 9
        for given in seen["evaluations"]:
            assert sorted(given) == list(range(n))
    correct = two["dev"]["accuracy"] * n  # a count of right answers out of n
    assert correct == pytest.approx(round(correct), abs=1e-4) and correct >= 1
    # the features: built and written by the main process, read from the cache by the other
    assert main["cache"] == ["built", "built"] and main["writes"] == 2  # train, dev
    assert other["cache"] == ["hit", "hit"] and other["writes"] == 0
    assert done.stderr.count("(tokenized and cached)") == 2, done.stderr[-3000:]
    assert len(list((tmp_path / "cache2" / "features").glob("*.npz"))) == 2
    # one writer: the same files as a 1-process run (checkpoints, TensorBoard events included)
    files = _files(tmp_path / "p1")
    assert "metrics.json" in files and any("tfevents" in f for f in files)
    assert any(f.startswith("checkpoints/") for f in files)
    assert _files(tmp_path / "p2") == files


def test_a_run_saved_under_two_processes_resumes_under_one(
    tiny_bert_no_dropout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 processes train to step 30 (mid-epoch: 12 steps an epoch), checkpoint and crash;
    ``nlptune train CONFIG --resume`` on one process ends where one uninterrupted process does."""
    from nlptune.training.checkpoint import checkpoint_step

    paths = {}
    for name in ("whole", "resumed"):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / name,
            trainer={"epochs": 8, "batch_size": 8, "eval_every": 12, "save_every": 5},
        )
        paths[name] = _write(config, tmp_path / f"{name}.yaml")
    killed = _drive(tmp_path, 2, paths["resumed"], tmp_path / "record", stop_at=30)
    assert killed.returncode != 0
    folder = tmp_path / "resumed"
    assert not (folder / "metrics.json").exists()
    assert checkpoint_step(folder / "checkpoints" / "last") == 30
    assert all(len(seen["evaluations"]) == 2 for seen in _records(tmp_path / "record", 2))
    _train_here("train", str(paths["whole"]))
    capsys.readouterr()
    _train_here("train", str(paths["resumed"]), "--resume")
    assert "resuming from step 30 of 96" in capsys.readouterr().err
    whole, resumed = _metrics(tmp_path / "whole"), _metrics(folder)
    assert resumed["steps"] == whole["steps"] == 96
    assert resumed["best_step"] == whole["best_step"]
    assert whole["dev"]["accuracy"] > 0.6
    assert set(resumed["dev"]) == set(whole["dev"])
    for key, value in whole["dev"].items():
        assert resumed["dev"][key] == pytest.approx(value, abs=1e-4), key
    # the evaluations after the resume: those of the uninterrupted run
    after = [r for r in _log(folder) if r["event"] == "eval" and r["step"] > 30]
    expected = [r for r in _log(tmp_path / "whole") if r["event"] == "eval" and r["step"] > 30]
    assert [r["step"] for r in after] == [r["step"] for r in expected] == [36, 48, 60, 72, 84, 96]
    for got, want in zip(after, expected, strict=True):
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-4)
        assert got["best"] == want["best"]


def test_the_accelerate_configs_load_and_the_scale_out_page_names_them() -> None:
    """configs/accelerate/*.yaml are what `accelerate launch --config_file` reads: accelerate's
    own loader takes them, its launch-time checks pass, every nested fsdp/deepspeed key is a
    launch option (accelerate copies unknown ones silently), and docs/scale_out.md names each."""
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    files = sorted(ACCELERATE_CONFIGS.glob("*.yaml"))
    expected = {"one_gpu_bf16", "ddp", "fsdp", "deepspeed_zero2", "two_nodes"}
    assert {f.stem for f in files} >= expected
    page = (REPO / "docs" / "scale_out.md").read_text(encoding="utf-8")
    known = vars(launch_command_parser().parse_args(["train.py"]))
    launched: dict[str, Any] = {}
    for path in files:
        raw = yaml.safe_load(path.read_text())
        assert isinstance(raw, dict) and raw["compute_environment"] == "LOCAL_MACHINE", path.name
        assert isinstance(load_config_from_file(str(path)), ClusterConfig), path.name
        for section in ("fsdp_config", "deepspeed_config"):
            for key in raw.get(section, {}):
                assert key in known, f"{path.name}: {section}.{key} is no accelerate option"
        argv = ["--config_file", str(path), "-m", "nlptune", "train", "config.yaml"]
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
        launched[path.stem] = args
        assert f"configs/accelerate/{path.name}" in page, path.name
    one, ddp, fsdp = launched["one_gpu_bf16"], launched["ddp"], launched["fsdp"]
    deepspeed, nodes = launched["deepspeed_zero2"], launched["two_nodes"]
    assert not (one.multi_gpu or one.use_fsdp or one.use_deepspeed) and one.num_processes == 1
    assert one.mixed_precision == "bf16"
    assert ddp.multi_gpu and ddp.num_processes > 1 and ddp.num_machines == 1
    assert deepspeed.use_deepspeed and deepspeed.zero_stage == 2
    assert deepspeed.gradient_accumulation_steps == 1  # nlptune accumulates (trainer.grad_accum)
    assert nodes.multi_gpu and nodes.num_machines == 2 and nodes.main_process_ip
    assert fsdp.use_fsdp
    env = prepare_multi_gpu_env(fsdp)  # the environment the launched processes get
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_RESHARD_AFTER_FORWARD"] == "true"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "BertLayer"


# accelerate runs an FSDP config on CPU processes as plain multi-process (it shards only on
# accelerators); this prelude turns its FSDP2 path on there, with the plugin accelerate's launcher
# configured from configs/accelerate/fsdp.yaml, so the CPU tests run FSDP's sharded parameters,
# gathers and optimizer states for real. nlptune's code is unchanged.
FSDP_ON_CPU = r"""
import accelerate
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

_init = accelerate.Accelerator.__init__


def _init_fsdp(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    PartialState().distributed_type = DistributedType.FSDP
    self.state.distributed_type = DistributedType.FSDP
    self.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* env


accelerate.Accelerator.__init__ = _init_fsdp
"""

# accelerate turns DeepSpeed off on a machine without accelerators (Accelerator(cpu=True), as
# nlptune builds it there); this prelude turns it on over the gloo processes accelerate started,
# with the plugin accelerate's launcher configured from configs/accelerate/deepspeed_zero2.yaml
# (DeepSpeed's CPU accelerator uses gloo without oneCCL). nlptune's code is unchanged.
DEEPSPEED_ON_CPU = r"""
import accelerate
from accelerate.state import PartialState
from accelerate.utils import DeepSpeedPlugin, DistributedType

_init = accelerate.Accelerator.__init__


def _init_deepspeed(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    plugin = DeepSpeedPlugin()  # from the launcher's ACCELERATE_DEEPSPEED_* variables
    plugin.set_mixed_precision(self.state.mixed_precision)
    PartialState().distributed_type = DistributedType.DEEPSPEED
    self.state.distributed_type = DistributedType.DEEPSPEED
    self.state.deepspeed_plugins = plugin
    plugin.select(_from_accelerator_state=True)
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")


accelerate.Accelerator.__init__ = _init_deepspeed
"""

RUN_CLI = """
import sys

from nlptune import cli

sys.exit(cli.main(sys.argv[1:]))
"""


def _launch(tmp_path: Path, prelude: str, program: str, config: str, *options: str) -> list[str]:
    """The command that runs ``prelude + program`` (Python source) on 2 CPU processes under
    ``configs/accelerate/CONFIG.yaml``."""
    script = tmp_path / f"{config}_program.py"
    script.write_text(prelude + program)
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_CONFIGS / f"{config}.yaml"),
        "--num_processes",
        "2",
        "--mixed_precision",
        "no",
        "--main_process_port",
        str(_free_port()),
        *options,
        str(script),
    ]


def _fsdp(tmp_path: Path, program: str, layers: str = "BertLayer") -> list[str]:
    """``program`` on 2 CPU processes under configs/accelerate/fsdp.yaml, FSDP2 sharding each
    ``layers`` module."""
    options = ("--dynamo_backend", "no", "--fsdp_transformer_layer_cls_to_wrap", layers)
    return _launch(tmp_path, FSDP_ON_CPU, program, "fsdp", *options)


def _same_weights(one: Path, two: Path, atol: float = 1e-5) -> None:
    """The saved model folders hold the same tensors (to ``atol``)."""
    from safetensors.torch import load_file

    files = sorted(p.name for p in (one / "model").glob("*.safetensors"))
    assert files and files == sorted(p.name for p in (two / "model").glob("*.safetensors"))
    for name in files:
        a, b = load_file(str(one / "model" / name)), load_file(str(two / "model" / name))
        assert sorted(a) == sorted(b), name
        for key in a:
            assert (a[key] - b[key]).abs().max().item() <= atol, f"{name}: {key}"


@pytest.mark.parametrize("engine", ["fsdp", "deepspeed"])
def test_sharded_runs_checkpoint_resume_and_save_whole_weights(
    tiny_bert_no_dropout: Path, tmp_path: Path, engine: str
) -> None:
    """Under FSDP every parameter and Adam moment is a shard; under DeepSpeed ZeRO-2 the fp32
    master weights and the moments are partitioned. Two processes train to step 30, checkpoint
    and crash; `--resume` under the same engine ends where one uninterrupted process does: the
    checkpoint holds whole tensors and moments (resuming without the moments drifts by ~0.05),
    they were given back after the engine split them, and the saved model is the whole
    1-process model. DeepSpeed runs where it is installed (not by nlptune's install:
    `pip install --no-build-isolation deepspeed` after torch)."""
    from safetensors.torch import load_file

    from nlptune.training.checkpoint import checkpoint_step

    if engine == "deepspeed":
        pytest.importorskip("deepspeed")

    def launch(program: str) -> list[str]:
        if engine == "fsdp":
            return _fsdp(tmp_path, program)
        return _launch(tmp_path, DEEPSPEED_ON_CPU, program, "deepspeed_zero2")

    paths = {}
    for name in ("whole", engine):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / name,
            trainer={"epochs": 8, "batch_size": 8, "eval_every": 12, "save_every": 5},
        )
        paths[name] = _write(config, tmp_path / f"{name}.yaml")
    _train_here("train", str(paths["whole"]))
    folder = tmp_path / engine
    argv = [*launch(DRIVER), str(paths[engine]), str(tmp_path / "record"), "30"]
    killed = _train(argv, _env(), check=False)
    assert killed.returncode != 0 and not (folder / "metrics.json").exists(), killed.stderr[-2000:]
    last = folder / "checkpoints" / "last"
    assert checkpoint_step(last) == 30
    # whole tensors (a shard of the 60-word embedding would have 30 rows), whole moments
    saved = load_file(str(last / "model.safetensors"))
    assert saved["encoder.base.embeddings.word_embeddings.weight"].shape == (60, 32)
    moments = load_file(str(last / "optimizer.safetensors"))
    assert moments["0.exp_avg"].shape == (60, 32) and float(moments["0.step"]) == 30
    _train([*launch(RUN_CLI), "train", str(paths[engine]), "--resume"], _env())
    whole, resumed = _metrics(tmp_path / "whole"), _metrics(folder)
    assert resumed["steps"] == whole["steps"] == 96
    assert resumed["best_step"] == whole["best_step"] and whole["dev"]["accuracy"] > 0.6
    for key, value in whole["dev"].items():
        assert resumed["dev"][key] == pytest.approx(value, abs=1e-4), key
    _same_weights(tmp_path / "whole", folder)


def test_fsdp_generates_on_every_process(tiny_t5: Path, tmp_path: Path) -> None:
    """A tiny T5 translates under FSDP as under one process: generate() runs the encoder alone
    (outside the root's gathering forward) and keeps both processes stepping until both are
    done."""
    runs = {}
    for n in (1, 2):
        config = translate_config(tiny_t5, tmp_path / f"p{n}", trainer={"epochs": 20})
        runs[n] = _write(config, tmp_path / f"p{n}.yaml")
    _train_here("train", str(runs[1]))
    _train(_fsdp(tmp_path, RUN_CLI, layers="T5Block") + ["train", str(runs[2])], _env())
    one, two = _metrics(tmp_path / "p1"), _metrics(tmp_path / "p2")
    assert one["dev"]["bleu"] > 20 and two["dev"]["bleu"] == pytest.approx(one["dev"]["bleu"])
    assert two["dev"]["chrf"] == pytest.approx(one["dev"]["chrf"])
    _same_weights(tmp_path / "p1", tmp_path / "p2")


def test_fsdp_refusals_say_what_to_launch_instead(tiny_bert: Path) -> None:
    """FSDP told to shard a layer class the model has not names the classes it has; a model
    without transformer layers (a BiLSTM, as static vectors train), or a frozen backbone whose
    outputs are cached (only heads train), points to the DDP config; FSDP version 1 (flattened
    parameters, which nlptune can't read whole) is refused by name."""
    from types import SimpleNamespace

    import torch

    from nlptune import build
    from nlptune.config import validate
    from nlptune.errors import NlptuneError
    from nlptune.training import sharding

    missing = ValueError("Could not find the transformer layer class T5Block in the model.")
    sharded = SimpleNamespace(is_fsdp2=True, is_main_process=True)
    bert, _ = build.new_model(build.parts(validate(tiny_config(tiny_bert, Path("o")), "c.yaml")))
    lstm = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 4))
    for model, expected in (
        (bert, "--fsdp_transformer_layer_cls_to_wrap BertLayer"),
        (lstm, "configs/accelerate/ddp.yaml"),
    ):
        advice = sharding.prepare_error(model, missing)
        assert advice is not None and "T5Block" in advice and expected in advice
    assert sharding.prepare_error(model, ValueError("something else")) is None
    frozen = validate(tiny_config(tiny_bert, Path("out"), strategy={"type": "frozen"}), "c.yaml")
    with pytest.raises(NlptuneError, match="frozen.*configs/accelerate/ddp.yaml"):
        build._check_not_sharded(frozen, sharded)
    build._check_not_sharded(frozen, SimpleNamespace(is_fsdp2=False))  # DDP: cached as ever
    from accelerate.utils import DistributedType

    version_1 = SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=False)
    with pytest.raises(NlptuneError, match="fsdp_version: 2"):
        sharding.check_version(version_1)
    sharding.check_version(SimpleNamespace(distributed_type=DistributedType.FSDP, is_fsdp2=True))


def test_deepspeed_is_given_the_micro_batch_and_refuses_what_it_cannot_run() -> None:
    """DeepSpeed needs its per-process micro-batch before accelerate's prepare(): nlptune fills
    an "auto" or missing one from trainer.batch_size and keeps a number the user's DeepSpeed
    config names. It refuses, with one line each, trainer.grad_accum > 1 (DeepSpeed steps at
    every backward), gradual unfreezing (its partitions are fixed at start-up) and ZeRO stage 3
    (FSDP is the full shard). Without DeepSpeed nothing changes."""
    from types import SimpleNamespace

    from nlptune.errors import NlptuneError
    from nlptune.training import sharding

    def accelerator(value: Any, stage: int = 2) -> Any:
        config = {} if value is None else {"train_micro_batch_size_per_gpu": value}
        plugin = SimpleNamespace(deepspeed_config=config, get_value=config.get, zero_stage=stage)
        return SimpleNamespace(deepspeed_plugin=plugin, num_processes=4)

    for given, expected in (("auto", 8), (None, 8), (5, 5)):
        acc = accelerator(given)
        sharding.check_deepspeed(acc, batch_size=32, grad_accum=1, strategy="full")
        assert acc.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == expected
    for acc, grad_accum, strategy, match in (
        (accelerator("auto"), 2, "full", "trainer.grad_accum=2 under DeepSpeed"),
        (accelerator("auto"), 1, "gradual", "strategy.type=gradual under DeepSpeed"),
        (accelerator("auto", stage=3), 1, "full", "ZeRO stage 3 .*fsdp.yaml"),
    ):
        with pytest.raises(NlptuneError, match=match):
            sharding.check_deepspeed(acc, batch_size=32, grad_accum=grad_accum, strategy=strategy)
    none = SimpleNamespace(deepspeed_plugin=None)
    sharding.check_deepspeed(none, batch_size=32, grad_accum=2, strategy="gradual")
