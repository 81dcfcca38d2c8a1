"""Training a candidate model in the background, then the gate (#27 items 4 and 5).

The console's 训练候选模型 button calls `start`: it records the candidate and starts
`python -m staff.candidates ID` as its own process, at a lower priority (`nice -n 10`: students'
turns on the same cores come first), never inside a serving process. One at a time: `start` takes
an exclusive lock on MODEL_STORE_DIR/training.lock and hands it to the job (`ID FD`), which
passes it on to `rasa train` and `rasa test core`: the lock is held until the last of them exits,
so a job killed mid-training does not let a second training start beside its orphan. A second
click while it runs is told so.

The job:
1. copies data/ and writes the accepted labels (every label naming an intent, the latest per text)
   into the copy's data/nlu/reviewed.yml, merged as `python -m staff improvements export` merges;
2. trains with Rasa (`rasa train`, the project's config and domain): `full`, or `finetune` from
   the served model with `--epoch-fraction` (Rasa's incremental training: only examples added);
3. runs the gate (evaluation/gate.py) against the served model, and records the report: `passed`
   (it may be promoted) or `refused` (with the reasons; it is never served).
Everything it does goes to MODEL_STORE_DIR/candidate-ID.log, which the console shows; lines that
start with "== " are its stages. A job that dies leaves its record `training`; once the lock is
free (its children gone too) the console marks it failed (`settle`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

from core import settings
from core.db import queries
from core.db.models import FAQ_GAP, utcnow
from staff import improve, improvements, model_registry, saved_tests

ROOT = Path(__file__).resolve().parent.parent
MODES = {"full": "完整训练", "finetune": "在线上模型上微调"}
FINETUNE_EPOCH_FRACTION = "0.2"
TRAIN_TIMEOUT_SECONDS = 3 * 3600
LOG_TAIL_BYTES = 64 * 1024
LOCK_TRIES, LOCK_PAUSE = 20, 0.05
LOCK_FD: list[int] = []  # in a job: its descriptor of the training lock, passed on to rasa train
JOB = ("nice", "-n", "10", sys.executable, "-m", "staff.candidates")
STOPPED = "训练进程没有做完就停了（控制台或机器重启过？）请看日志，再训练一次。"
RUNNING: list[subprocess.Popen] = []  # the jobs this console started, waited for when they end


class NotStarted(RuntimeError):
    """Why a training was not started (the console shows it)."""


def lock_path() -> Path:
    return model_registry.store_dir() / "training.lock"


def log_path(model_id: int) -> Path:
    return model_registry.store_dir() / f"candidate-{model_id}.log"


def probe_lock(fd: int) -> bool:
    """Takes the training lock on `fd` if no job holds it. A probe of the console (a page view,
    settle) holds it for an instant: a start that meets one tries again rather than refusing."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(LOCK_PAUSE)
    return False


def training_now() -> bool:
    """Whether a job holds the training lock."""
    for process in list(RUNNING):
        if process.poll() is not None:
            RUNNING.remove(process)
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False


def settle() -> None:
    """Records left `training` by a job that is gone are marked failed. Done holding the lock, so
    that a job starting meanwhile is not taken for a dead one."""
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a job runs
        for model in model_registry.all_models():
            if model.status == "training":
                model_registry.update(
                    model.id, status="failed", reason=STOPPED, finished_at=utcnow()
                )
    finally:
        os.close(fd)


def start(by: str, mode: str) -> int:
    """Records a candidate and starts its job; returns its number."""
    if mode not in MODES:
        raise NotStarted("没有这种训练方式。")
    served = model_registry.current()
    if served is None or served.path is None or not served.path.is_file():
        raise NotStarted("还没有线上模型可以比较：请先运行 make train，再重启控制台。")
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not probe_lock(fd):
            raise NotStarted("已有一个候选模型在训练，请等它结束。")
        model_id = model_registry.create(status="training", mode=mode, trained_by=by)
        try:
            with log_path(model_id).open("ab") as log:
                RUNNING.append(
                    subprocess.Popen(
                        [*JOB, str(model_id), str(fd)],
                        cwd=ROOT,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        pass_fds=(fd,),  # the job holds the lock until it exits
                        start_new_session=True,
                    )
                )
        except OSError as error:
            model_registry.update(
                model_id, status="failed", reason=f"没能启动训练：{error}", finished_at=utcnow()
            )
            raise NotStarted(f"没能启动训练进程：{error}") from None
        return model_id
    finally:
        os.close(fd)


def say(text: str) -> None:
    """A line of the log; a stage ("== …") with the time it started."""
    if text.startswith("== "):
        text += time.strftime("  (%H:%M:%S)")
    print(text, flush=True)


def stage(text: str) -> None:
    say(f"== {text}")


def accepted_labels() -> list[tuple[str, str]]:
    """(text, intent) of every label that names an intent and can be training data."""
    found = []
    for label in queries.labels(limit=None):
        text = improvements.one_line(label.text)
        if label.intent != FAQ_GAP and improve.trainable(text):
            found.append((text, label.intent))
    return sorted(found)


def data_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in [*files, ROOT / "config.yml", ROOT / "domain.yml"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def training_data(work: Path) -> tuple[Path, list[tuple[str, str]]]:
    data = work / "data"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(ROOT / "data", data)
    labels = accepted_labels()
    reviewed = data / "nlu" / "reviewed.yml"
    examples = improvements.merged(improvements.exported_examples(reviewed), queries.labels(None))
    reviewed.write_text(improvements.nlu_yaml(examples), encoding="utf-8")
    return data, labels


def train(model_id: int, mode: str, data: Path, work: Path, served: Path) -> Path:
    command = [
        str(Path(sys.executable).parent / "rasa"),
        "train",
        "--data",
        str(data),
        "--config",
        str(ROOT / "config.yml"),
        "--domain",
        str(ROOT / "domain.yml"),
        "--out",
        str(work),
        "--fixed-model-name",
        "candidate",
    ]
    if mode == "finetune":
        command += ["--finetune", str(served), "--epoch-fraction", FINETUNE_EPOCH_FRACTION]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "RASA_TELEMETRY_ENABLED": "false"}
    result = subprocess.run(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=sys.stdout,
        stderr=subprocess.STDOUT,
        env=environment,
        timeout=TRAIN_TIMEOUT_SECONDS,
        pass_fds=tuple(LOCK_FD),  # a job killed mid-training leaves the lock held until it ends
    )
    archive = work / "candidate.tar.gz"
    if result.returncode != 0 or not archive.is_file():
        raise RuntimeError(f"rasa train 以 {result.returncode} 退出，没有得到模型（见日志）")
    digest = model_registry.file_sha256(archive)
    name = f"candidate-{model_id}-{digest[:12]}.tar.gz"
    archive.replace(model_registry.store_dir() / name)
    return model_registry.store_dir() / name


def run(model_id: int) -> None:
    from evaluation import gate

    record = model_registry.get(model_id)
    served = model_registry.current()
    if record is None or served is None or served.path is None:
        raise RuntimeError("没有这个候选模型的记录，或没有线上模型")
    work = model_registry.store_dir() / f"candidate-{model_id}"
    work.mkdir(parents=True, exist_ok=True)
    stage(f"1/3 准备训练数据：data/ 加上已接受的标注（{MODES[record.mode]}）")
    data, labels = training_data(work)
    say(f"已接受的意图标注 {len(labels)} 条")
    started = time.monotonic()
    stage("2/3 训练（rasa train）")
    path = train(model_id, record.mode, data, work, served.path)
    seconds = round(time.monotonic() - started, 1)
    model_registry.update(
        model_id,
        file_name=path.name,
        file_sha256=model_registry.file_sha256(path),
        seconds=seconds,
        data_hash=data_hash(data),
        labels=len(labels),
    )
    say(f"训练用时 {seconds} 秒")
    stage(f"3/3 检查：与线上模型 #{served.id} 比较")
    stories = [story for _, _, _, story in saved_tests.saved_stories()]
    report = gate.gate(
        candidate=path,
        served=served.path,
        labels=labels,
        saved_stories=saved_tests.stories_file(stories) if stories else "",
        work=work / "gate",
        margin=settings.gate_f1_margin(),
        log=say,
        stories=functools.partial(gate.run_stories, pass_fds=tuple(LOCK_FD)),
        served_cache=model_registry.store_dir()
        / f"readings-{served.file_sha256}-{gate.reader_fingerprint()}.json",
    )
    report["served_model"] = served.id
    reasons = report["reasons"]
    for scratch in ("gate", "data"):  # the archive holds what it was trained on
        with contextlib.suppress(OSError):
            shutil.rmtree(work / scratch)
    model_registry.update(
        model_id,
        status="refused" if reasons else "passed",
        scores=json.dumps(report, ensure_ascii=False),
        reason="\n".join(reasons) or None,
        finished_at=utcnow(),
    )
    stage("拒绝：" + "；".join(reasons) if reasons else "通过：可以上线")


def running_job() -> int | None:
    """The process (and process group) id of the job holding the lock, if one does."""
    if not training_now():
        return None
    raw = lock_path().read_text(encoding="ascii", errors="replace").strip()
    return int(raw) if raw.isdigit() else None


def main(argv: list[str]) -> int:
    model_id = int(argv[0])
    if len(argv) > 1 and argv[1].isdigit():
        LOCK_FD.append(int(argv[1]))
    # who holds the lock (flock belongs to the inherited descriptor; writing here keeps it)
    lock_path().write_text(str(os.getpid()), encoding="ascii")
    try:
        run(model_id)
    except BaseException as error:  # the record must not stay `training`
        traceback.print_exc()
        model_registry.update(
            model_id,
            status="failed",
            reason=f"{type(error).__name__}: {error}"[:2000],
            finished_at=utcnow(),
        )
        stage("失败")
        return 1
    for fd in LOCK_FD:  # the record is final and no child runs: the next start need not wait
        with contextlib.suppress(OSError):  # for this interpreter (TensorFlow) to wind down
            fcntl.flock(fd, fcntl.LOCK_UN)
    return 0


def log_tail(model_id: int) -> tuple[list[str], list[str], int | None]:
    """The stages so far, the log's last lines, and the last progress percentage Rasa printed."""
    path = log_path(model_id)
    if not path.exists():
        return [], [], None
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        text = log.read().decode("utf-8", "replace")
    stages = []
    with path.open(encoding="utf-8", errors="replace") as log:
        stages = [line[3:].strip() for line in log if line.startswith("== ")]
    pieces = [piece for line in text.split("\n") for piece in line.split("\r") if piece.strip()]
    percent = None
    for piece in reversed(pieces):
        if "Epochs:" in piece and "%" in piece:
            number = piece.split("Epochs:")[1].split("%")[0].strip()
            if number.isdigit():
                percent = int(number)
                break
    lines = [line for line in text.split("\n") if line.strip()][-40:]
    return stages, [line.split("\r")[-1] for line in lines], percent


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
