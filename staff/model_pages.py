"""The console's 模型 pages (admins): train a candidate, read the gate, promote, roll back.

- `/admin/models`: the model served now and the one a rollback would bring back, the training
  form (one job at a time, staff/candidates.py), every model with its status and scores.
- `/admin/models/N`: one model: while it trains, its stages, Rasa's progress and the log's end
  (kept current by the console's script); once scored, the gate's report
  (hold-out, second hold-out, perturbed, per-intent changes, every text read differently, labels
  not learned, test stories failed) and, when it passed, the 上线 button. While it trains, the
  console's own script asks `/admin/models/N/progress` every few seconds (no timed reload).
- Posts: train, promote, roll back, each by the signed-in admin, recorded with who and when.
"""

import json
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from staff import candidates, model_registry
from staff.pages import HEADERS, in_thread, page, refused, signed_in

STATUS_NAMES = {
    "training": "训练中",
    "failed": "失败",
    "passed": "通过检查",
    "refused": "被拒绝",
    "repository": "仓库训练（make train）",
}


def report_of(model: model_registry.Model) -> dict[str, Any] | None:
    if not model.scores:
        return None
    try:
        report = json.loads(model.scores)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def overview() -> dict[str, Any]:
    candidates.settle()
    current = model_registry.current()
    return {
        "current": current,
        "target": model_registry.rollback_target(),
        "models": model_registry.all_models(),
        "training": candidates.training_now(),
        "reports": {m.id: report_of(m) for m in model_registry.all_models()},
    }


def seen_in(request: Request) -> int | None:
    """The served model the posting page showed (its hidden `served` field), if it says."""
    raw = str((request.form or {}).get("served", ""))[:12]
    return int(raw) if raw.isdigit() else None


def add_routes(app: Sanic) -> None:
    @app.get("/admin/models")
    @signed_in(role="admin")
    async def models(request: Request) -> HTTPResponse:
        found = await in_thread(overview)
        return page(
            "models.html",
            user=request.ctx.user,
            modes=candidates.MODES,
            statuses=STATUS_NAMES,
            note=str(request.args.get("note", ""))[:200],
            **found,
        )

    @app.get("/admin/models/<number:int>")
    @signed_in(role="admin")
    async def model(request: Request, number: int) -> HTTPResponse:
        candidates.settle()
        found = model_registry.get(number)
        if found is None:
            return refused(404, "没有这个模型。")
        stages, lines, percent = await in_thread(candidates.log_tail, number)
        current = model_registry.current()
        return page(
            "model.html",
            user=request.ctx.user,
            model=found,
            report=report_of(found),
            statuses=STATUS_NAMES,
            modes=candidates.MODES,
            stages=stages,
            lines=lines,
            percent=percent,
            serving=current is not None and current.id == found.id,
            served_now=current.id if current is not None else "",
            gated_now=current is not None and model_registry.gated_against(found) == current.id,
            note=str(request.args.get("note", ""))[:200],
        )

    @app.get("/admin/models/<number:int>/progress")
    @signed_in(role="admin")
    async def progress(_: Request, number: int) -> HTTPResponse:
        """What the training page shows while it trains (staff/static/console.js polls it)."""
        candidates.settle()
        found = model_registry.get(number)
        if found is None:
            return response.json({"error": "not found"}, status=404, headers=HEADERS)
        stages, lines, percent = await in_thread(candidates.log_tail, number)
        return response.json(
            {"status": found.status, "stages": stages, "lines": lines, "percent": percent},
            headers=HEADERS,
        )

    @app.post("/admin/models/train")
    @signed_in(role="admin")
    async def train(request: Request) -> HTTPResponse:
        mode = str((request.form or {}).get("mode", "full"))
        try:
            number = await in_thread(candidates.start, request.ctx.user.name, mode)
        except candidates.NotStarted as error:
            return refused(409, str(error))
        return response.redirect(f"/admin/models/{number}", status=303, headers=HEADERS)

    @app.post("/admin/models/<number:int>/promote")
    @signed_in(role="admin")
    async def promote(request: Request, number: int) -> HTTPResponse:
        try:
            await in_thread(model_registry.promote, number, request.ctx.user.name, seen_in(request))
        except model_registry.NotPromotable as error:
            return refused(409, str(error))
        return response.redirect("/admin/models?note=promoted", status=303, headers=HEADERS)

    @app.post("/admin/models/rollback")
    @signed_in(role="admin")
    async def rollback(request: Request) -> HTTPResponse:
        try:
            await in_thread(model_registry.roll_back, request.ctx.user.name, seen_in(request))
        except model_registry.NotPromotable as error:
            return refused(409, str(error))
        return response.redirect("/admin/models?note=rolled-back", status=303, headers=HEADERS)
