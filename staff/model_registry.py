"""The models the console knows, and which one the Rasa servers pull (#27 items 4 to 6).

Every model has a record (core/db/models.py `AssistantModel`): who trained it, from which data
(a hash of the training files), how long it took, the gate's report, and its archive under
MODEL_STORE_DIR (var/models/ by default). The model the Rasa servers serve is the top of a stack
replayed from `model_deployments`:

- `make train`'s model (models/assistant.tar.gz) is registered when the console starts, if its
  archive is new, and pushed: a redeploy of the repository serves what the repository trains;
- promoting a candidate that passed the gate pushes it;
- rolling back pops the top: the model deployed before it is served again (and again, down to the
  first one).

The console serves the top's archive at `GET /models/current` (staff/model_server.py) with its
SHA-256 as the ETag; each worker of each Rasa server pulls it (runtime/model_pulling.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from core import settings
from core.db.engine import session_scope
from core.db.models import AssistantModel, ModelDeployment, utcnow

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY_MODEL = ROOT / "models" / "assistant.tar.gz"
REPOSITORY_STAMP = ROOT / "models" / ".assistant.sha256"  # scripts/train.sh: the data's hash
CHUNK = 1 << 20
MAX_ID = 2**31 - 1  # a larger number (from a URL) names no model and would overflow the column


class NotPromotable(ValueError):
    """Why a model cannot be served (the console shows it)."""


def store_dir() -> Path:
    """Where model archives, candidates' training data and logs live: MODEL_STORE_DIR."""
    raw = settings.read("MODEL_STORE_DIR")
    folder = Path(raw) if raw else ROOT / "var" / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as archive:
        while chunk := archive.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Model:
    """A model's record, as the console shows it."""

    id: int
    status: str
    mode: str
    trained_by: str
    created_at: datetime
    finished_at: datetime | None
    data_hash: str | None
    labels: int
    file_sha256: str | None
    file_name: str | None
    seconds: float | None
    scores: str | None
    reason: str | None

    @property
    def path(self) -> Path | None:
        return store_dir() / self.file_name if self.file_name else None


def as_model(row: AssistantModel) -> Model:
    return Model(
        id=row.id,
        status=row.status,
        mode=row.mode,
        trained_by=row.trained_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        data_hash=row.data_hash,
        labels=row.labels or 0,
        file_sha256=row.file_sha256,
        file_name=row.file_name,
        seconds=row.seconds,
        scores=row.scores,
        reason=row.reason,
    )


def get(model_id: int) -> Model | None:
    if not 0 < model_id <= MAX_ID:
        return None
    with session_scope() as session:
        row = session.get(AssistantModel, model_id)
        return as_model(row) if row is not None else None


def all_models(limit: int = 200) -> list[Model]:
    """The records, the newest first."""
    query = sa.select(AssistantModel).order_by(AssistantModel.id.desc()).limit(limit)
    with session_scope() as session:
        return [as_model(row) for row in session.scalars(query)]


@dataclass(frozen=True)
class Deployment:
    """One switch of the served model."""

    model_id: int
    action: str
    by: str
    at: datetime


def deployments() -> list[Deployment]:
    """Every switch, the oldest first."""
    query = sa.select(
        ModelDeployment.model_id, ModelDeployment.action, ModelDeployment.by, ModelDeployment.at
    ).order_by(ModelDeployment.id)
    with session_scope() as session:
        return [Deployment(*row) for row in session.execute(query)]


def stack(history: list[Deployment]) -> list[int]:
    """The deployed models, the one served now last: pushes, and a rollback pops."""
    served: list[int] = []
    for deployment in history:
        if deployment.action == "rollback":
            if len(served) > 1:
                served.pop()
        elif not served or served[-1] != deployment.model_id:
            served.append(deployment.model_id)
    return served


def current() -> Model | None:
    """The model the Rasa servers are to serve now (None before any was registered)."""
    served = stack(deployments())
    return get(served[-1]) if served else None


def rollback_target() -> Model | None:
    """The model a rollback would serve again, if any."""
    served = stack(deployments())
    return get(served[-2]) if len(served) > 1 else None


def deploy(model_id: int, action: str, by: str) -> None:
    with session_scope() as session:
        session.add(ModelDeployment(model_id=model_id, action=action, by=by, at=utcnow()))


@contextlib.contextmanager
def switching() -> Iterator[None]:
    """One switch at a time: what is served is read and changed under one lock, so that two
    clicks (two admins, a double click) cannot both act on the same state."""
    fd = os.open(store_dir() / "deploy.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def changed_since(seen: int | None) -> str | None:
    """Why a decision taken while model `seen` was served is stale, if it is."""
    served = current()
    if seen is not None and (served is None or served.id != seen):
        now = f"#{served.id}" if served else "没有"
        return f"线上模型已经变了（现在是 {now}），请刷新页面再决定。"
    return None


def gated_against(model: Model) -> int | None:
    """The served model the gate compared this candidate with."""
    try:
        report = json.loads(model.scores or "{}")
    except ValueError:
        return None
    served = report.get("served_model") if isinstance(report, dict) else None
    return served if isinstance(served, int) else None


def promote(model_id: int, by: str, seen: int | None = None) -> Model:
    """Serves a candidate that passed the gate against the model served now; anything else is
    refused with the reason. `seen`: the served model the admin's page showed."""
    with switching():
        model = get(model_id)
        if model is None:
            raise NotPromotable("没有这个模型。")
        if model.status != "passed":
            raise NotPromotable(f"只有通过检查的候选模型可以上线（这个模型：{model.status}）。")
        if model.path is None or not model.path.exists():
            raise NotPromotable("这个模型的文件不在了，不能上线。")
        current_model = current()
        if current_model is not None and current_model.id == model.id:
            raise NotPromotable("这个模型已经在线上。")
        stale = changed_since(seen)
        if stale:
            raise NotPromotable(stale)
        compared = gated_against(model)
        if current_model is not None and compared != current_model.id:
            raise NotPromotable(
                f"这个候选模型是和 #{compared} 比较的，线上现在是 #{current_model.id}："
                "请重新训练一个候选模型，让检查和现在的线上模型比较。"
            )
        deploy(model.id, "promote", by)
        return model


def roll_back(by: str, seen: int | None = None) -> Model:
    """Serves the model deployed before the current one again. `seen`: the served model the
    admin's page showed (a second click on a stale page is refused, not a second rollback)."""
    with switching():
        stale = changed_since(seen)
        if stale:
            raise NotPromotable(stale)
        target = rollback_target()
        if target is None:
            raise NotPromotable("没有更早的模型可以回退。")
        deploy(target.id, "rollback", by)
        return target


def create(**values: object) -> int:
    with session_scope() as session:
        row = AssistantModel(created_at=utcnow(), labels=0, **values)
        session.add(row)
        session.flush()
        return int(row.id)


def update(model_id: int, **values: object) -> None:
    with session_scope() as session:
        session.execute(
            sa.update(AssistantModel).where(AssistantModel.id == model_id).values(**values)
        )


def register_repository_model(
    path: Path = REPOSITORY_MODEL, by: str = "make train"
) -> Model | None:
    """`make train`'s model, recorded and served when its archive is one the console has not
    seen (a redeploy of the repository); None when there is no trained model."""
    if not path.exists():
        return None
    digest = file_sha256(path)
    with switching():  # not between a promote's check and its record
        with session_scope() as session:
            known = session.scalars(
                sa.select(AssistantModel).where(AssistantModel.file_sha256 == digest).limit(1)
            ).first()
            if known is not None:
                return as_model(known)
        name = f"repository-{digest[:16]}.tar.gz"
        copy = store_dir() / name
        if not copy.exists():  # make train overwrites its file: the record keeps its own copy
            part = copy.with_name(f".{name}.{os.getpid()}.part")
            shutil.copyfile(path, part)
            part.replace(copy)
        stamp = REPOSITORY_STAMP.read_text().strip() if REPOSITORY_STAMP.exists() else None
        model_id = create(
            status="repository",
            mode="repository",
            trained_by=by,
            finished_at=utcnow(),
            data_hash=stamp if path == REPOSITORY_MODEL else None,
            file_sha256=digest,
            file_name=name,
        )
        deploy(model_id, "repository", by)
        return get(model_id)
