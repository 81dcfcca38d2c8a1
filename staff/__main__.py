"""Entry point of `python -m staff`; see staff/__init__.py."""

import argparse
import getpass
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core import settings
from core.db import queries
from core.db.models import LABEL_SOURCES, STAFF_ROLES, TICKET_STATUSES, Ticket

if TYPE_CHECKING:
    from staff import model_registry

# C0 and C1 control characters (escape sequences, carriage returns…), which could rewrite the staff
# terminal when a student's text or an old conversation id carries them.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """`text` safe to print in a terminal: each control character shown as its escape."""
    return CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def show_ticket(ticket: Ticket) -> str:
    lines = [
        f"ticket {ticket.id}  [{ticket.status}]"
        + (f"  claimed by {ticket.claimed_by}" if ticket.claimed_by else ""),
        f"  conversation: {printable(ticket.conversation_id)}  channel: {ticket.channel or '-'}",
        f"  topic: {ticket.topic or '-'}",
        f"  opened: {ticket.created_at:%Y-%m-%d %H:%M} UTC"
        f"  updated: {ticket.updated_at:%Y-%m-%d %H:%M} UTC",
        "  case:",
    ]
    lines += [f"    {printable(line)}" for line in ticket.summary.splitlines()]
    return "\n".join(lines)


def list_line(ticket: Ticket) -> str:
    return (
        f"{ticket.id:>6}  {ticket.status:<8}  {ticket.created_at:%Y-%m-%d %H:%M}  "
        f"{ticket.channel or '-':<10}  {ticket.topic or '-':<12}  {printable(ticket.path)}"
    )


def tickets(args: argparse.Namespace) -> int:
    if args.action == "list":
        found = queries.list_tickets(status=args.status, limit=args.limit)
        if not found:
            print("no tickets" + (f" with status {args.status}" if args.status else ""))
        print("\n".join(list_line(t) for t in found))
        return 0
    if args.number is None:
        print(f"tickets {args.action} needs a ticket number", file=sys.stderr)
        return 2
    if args.action == "show":
        ticket = queries.get_ticket(args.number)
        if ticket is None:
            print(f"no ticket {args.number}", file=sys.stderr)
            return 1
        print(show_ticket(ticket))
        return 0
    status = {"claim": "claimed", "resolve": "resolved", "release": "open"}[args.action]
    try:
        ticket = queries.change_status(args.number, status, staff=args.by)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(show_ticket(ticket))
    return 0


def report(args: argparse.Namespace) -> int:
    if args.week or args.days:
        return outcomes_report(args.days or 7, args.charts)
    print(f"Top {args.limit} messages the assistant did not understand (masked):")
    rows = queries.top_unanswered(args.limit)
    for text, count, last_seen in rows:
        print(f"  {count:>5}  {last_seen:%Y-%m-%d}  {printable(text)}")
    if not rows:
        print("  none")
    print("\nWas the answer helpful? (the student's yes/no right after it)")
    counts = queries.feedback_by_answer()
    for c in counts:
        print(f"  {c.answer:<32} yes {c.helpful:>4}  no {c.not_helpful:>4}  helpful {c.rate:.0%}")
    if counts:
        yes = sum(c.helpful for c in counts)
        total = yes + sum(c.not_helpful for c in counts)
        print(f"  {'all answers':<32} yes {yes:>4}  no {total - yes:>4}  helpful {yes / total:.0%}")
    else:
        print("  no feedback yet")
    return 0


def outcomes_report(days: int, charts: str | None) -> int:
    """The outcomes of the last `days` days in the team's zone, as the dashboard shows them;
    with `charts`, the dashboard's charts written there as SVG files (for the weekly mail)."""
    from staff import outcomes

    if not 1 <= days <= outcomes.MAX_DAYS:
        print(f"--days must be between 1 and {outcomes.MAX_DAYS}", file=sys.stderr)
        return 2
    outcomes.refresh()
    found = outcomes.figures(*outcomes.window(days))
    for line in outcomes.report_lines(found):
        print(printable(line))
    if charts:
        folder = Path(charts)
        folder.mkdir(parents=True, exist_ok=True)
        for name, svg in outcomes.charts(found).items():
            (folder / f"outcomes-{name}.svg").write_text(svg, encoding="utf-8")
        print(f"\ncharts written to {folder}/outcomes-*.svg")
    return 0


def review(args: argparse.Namespace) -> int:
    """The answered messages worth a second look, grouped as the console's review page has them."""
    from staff import improve

    kinds = [args.kind] if args.kind else list(improve.REVIEW_KINDS)
    for kind in kinds:
        print(f"{kind}: {improve.REVIEW_KINDS[kind]}")
        groups = improve.review_groups(queries.review_rows(kind, improve.MAX_GROUPED))
        for review in groups[: args.limit]:
            group = review.group
            print(f"  {group.count:>5}  {group.first_seen:%Y-%m-%d} .. {group.last_seen:%Y-%m-%d}")
            for text in group.texts[:5]:
                print(f"         {printable(text)}  -> {review.intents[text]}")
        if not groups:
            print("  none")
    return 0


def label(args: argparse.Namespace) -> int:
    """Labels one message (masked before it is stored), as the console labels a group."""
    from core.db.models import FAQ_GAP
    from staff import improve

    if args.intent not in {*improve.intents(), FAQ_GAP}:
        print(f"{args.intent!r} is no intent of domain.yml, nor {FAQ_GAP}", file=sys.stderr)
        return 2
    queries.save_labels([args.text], args.source, args.intent, args.by)
    print(f"labelled as {args.intent} by {args.by}")
    return 0


def improvements(args: argparse.Namespace) -> int:
    """Writes the accepted labels as files to commit, or says how many are not written yet."""
    from staff import improvements as files

    accepted = queries.labels(limit=None)
    if args.action == "export":
        from staff import saved_tests

        count = files.export(accepted)
        print(f"{files.REVIEWED.relative_to(files.ROOT)}: {count} examples")
        stories = saved_tests.export()
        print(f"{saved_tests.STORIES.relative_to(files.ROOT)}: {stories} saved conversations")
        for text in files.untrainable(accepted):
            print(
                f"left out (markup or control characters NLU data cannot hold): {printable(text)}"
            )
        print(f"{files.GAPS.relative_to(files.ROOT)}: the questions the FAQ does not answer")
        print("review the diff (git diff data/ docs/ tests/), then commit it; make train and")
        print("make test use it")
        return 0
    missing = files.not_exported(accepted)
    print(f"{len(accepted)} labels; {missing} not yet in {files.REVIEWED.relative_to(files.ROOT)}")
    return 0


def purge(args: argparse.Namespace) -> int:
    days = args.days or settings.retention_days()
    done = queries.purge_older_than(days)
    print(
        f"deleted {done.conversations} conversations ({done.events} events) older than {days} days,"
        f" {done.feedback} feedback rows, {done.tickets} resolved tickets,"
        f" {done.unanswered} unanswered questions"
    )
    return 0


def users(args: argparse.Namespace) -> int:
    """Adds a console account; the password is asked for (or read from standard input)."""
    from core.db import staff
    from staff import passwords

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    weak = passwords.too_weak(password)
    if weak:
        print(f"password refused: it needs {weak}", file=sys.stderr)
        return 1
    try:
        staff.add_user(args.name, args.role, passwords.hashed(password))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"added {args.role} {args.name}")
    return 0


def model_line(model: "model_registry.Model", served: int | None) -> str:
    import json

    holdout = json.loads(model.scores)["holdout"] if model.scores else None
    f1 = f"F1 {holdout['served']:.3f}->{holdout['candidate']:.3f}" if holdout else ""
    mark = "*" if model.id == served else " "
    seconds = f"{model.seconds:.0f} s" if model.seconds else ""
    return (
        f"{mark}{model.id:>5}  {model.status:<10}  {model.mode:<10}  {model.trained_by:<12}  "
        f"{model.created_at:%Y-%m-%d %H:%M}  {seconds:>7}  {f1}"
    )


def models(args: argparse.Namespace) -> int:
    """The console's models (staff/model_registry.py): list, train, promote, roll back."""
    import time

    from staff import candidates, model_registry

    candidates.settle()
    if args.action == "register":
        model = model_registry.register_repository_model()
        print(f"serving model {model.id}" if model else "no trained model: run make train")
        return 0 if model else 1
    if args.action == "list":
        current = model_registry.current()
        served = current.id if current else None
        print("\n".join(model_line(m, served) for m in model_registry.all_models()) or "no models")
        return 0
    if not args.by:
        print(f"models {args.action} needs --by NAME", file=sys.stderr)
        return 2
    try:
        if args.action == "train":
            model_id = candidates.start(args.by, args.mode)
            print(f"training candidate {model_id}: {candidates.log_path(model_id)}")
            while args.wait and candidates.training_now():
                time.sleep(2)
            if args.wait:
                model = model_registry.get(model_id)
                print(f"candidate {model_id}: {model.status if model else '?'}")
                if model and model.reason:
                    print(printable(model.reason))
            return 0
        if args.action == "promote":
            if args.number is None:
                print("models promote needs a model number", file=sys.stderr)
                return 2
            model = model_registry.promote(args.number, args.by)
        else:
            model = model_registry.roll_back(args.by)
    except (candidates.NotStarted, model_registry.NotPromotable) as error:
        print(error, file=sys.stderr)
        return 1
    print(f"serving model {model.id} (every worker within MODEL_PULL_SECONDS)")
    return 0


def console(args: argparse.Namespace) -> int:
    """Serves the staff console (staff/web.py) until stopped."""
    from staff.web import create_app

    create_app().run(host=args.host, port=args.port, access_log=False)
    return 0


def user_name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{2,64}", raw):
        raise argparse.ArgumentTypeError("2-64 letters, digits, '_', '.' or '-'")
    return raw


def at_least_one_day(raw: str) -> int:
    """--days below 1 would delete every conversation, the one going on included."""
    days = int(raw)
    if days < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 day, not {raw}")
    return days


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m staff", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tickets", help="list, show, claim, resolve or release handoff tickets")
    t.add_argument("action", choices=["list", "show", "claim", "resolve", "release"])
    t.add_argument("number", nargs="?", type=int)
    t.add_argument("--status", choices=TICKET_STATUSES)
    t.add_argument("--limit", type=int, default=50)
    t.add_argument("--by", help="who claims the ticket")
    t.set_defaults(run=tickets)
    r = sub.add_parser("report", help="top unanswered questions and answer feedback")
    r.add_argument("--limit", type=int, default=20)
    r.add_argument("--week", action="store_true", help="outcomes of the last 7 days instead")
    r.add_argument("--days", type=int, default=0, help="outcomes of the last N days instead")
    r.add_argument("--charts", metavar="FOLDER", help="with --week/--days: write the charts")
    r.set_defaults(run=report)
    v = sub.add_parser("review", help="answered messages worth a second look, by kind")
    v.add_argument("--kind", choices=["unsure", "did_not_help", "handed_off"])
    v.add_argument("--limit", type=int, default=20, help="groups per kind")
    v.set_defaults(run=review)
    a = sub.add_parser("label", help="label one message: an intent, or faq_gap")
    a.add_argument("text")
    a.add_argument("--intent", required=True, help="an intent of domain.yml, or faq_gap")
    a.add_argument("--by", required=True, type=user_name, help="who labels it")
    a.add_argument("--source", choices=LABEL_SOURCES, default="not_understood")
    a.set_defaults(run=label)
    i = sub.add_parser("improvements", help="write the accepted labels as files to commit")
    i.add_argument("action", choices=["export", "status"])
    i.set_defaults(run=improvements)
    m = sub.add_parser("models", help="list, train, promote or roll back models")
    m.add_argument("action", choices=["list", "register", "train", "promote", "rollback"])
    m.add_argument("number", nargs="?", type=int)
    m.add_argument("--mode", choices=["full", "finetune"], default="full")
    m.add_argument("--by", type=user_name, help="who trains, promotes or rolls back")
    m.add_argument("--wait", action="store_true", help="train: wait until the job ends")
    m.set_defaults(run=models)
    p = sub.add_parser("purge", help="delete conversations older than the retention period")
    p.add_argument("--days", type=at_least_one_day, help="default: RETENTION_DAYS, or 90")
    p.set_defaults(run=purge)
    u = sub.add_parser("users", help="add a staff console account")
    u.add_argument("action", choices=["add"])
    u.add_argument("name", type=user_name)
    u.add_argument("--role", choices=STAFF_ROLES, default="agent")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    u.set_defaults(run=users)
    c = sub.add_parser("console", help="serve the staff console (make run starts it)")
    c.add_argument("--host", default=settings.read("STAFF_HOST") or "127.0.0.1")
    c.add_argument("--port", type=int, default=int(settings.read("STAFF_PORT") or 5006))
    c.set_defaults(run=console)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
