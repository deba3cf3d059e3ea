"""``diemcau``: the organiser's common tasks against a running server's REST API.

The server URL and token come from ``--url``/``--token`` or ``DIEMCAU_URL``/``DIEMCAU_TOKEN``.
Creating conferences needs the admin token; everything else works with an organiser token.
Times without a UTC offset are taken as this computer's local time.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from importlib.metadata import version as package_version
from typing import Any, NoReturn

import httpx
import typer

from server.cli_progress import CountingReader, file_chunks, upload_progress

HELP = (
    "Điểm Cầu: `serve` runs the server, `migrate` updates its database; the other commands are organiser "
    "tasks against a running server. Server URL and token: --url/--token or DIEMCAU_URL/DIEMCAU_TOKEN. "
    "Creating conferences needs the admin token; the rest an organiser token."
)
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
conference_app = typer.Typer(help="Create, list and schedule conferences.", no_args_is_help=True)
points_app = typer.Typer(help="Connection points: import from CSV, list, issue operator links.", no_args_is_help=True)
members_app = typer.Typer(help="Members: import from CSV, issue personal links.", no_args_is_help=True)
materials_app = typer.Typer(help="Study materials: upload and list.", no_args_is_help=True)
questions_app = typer.Typer(help="Written questions: list them, export them as CSV.", no_args_is_help=True)
app.add_typer(conference_app, name="conference")
app.add_typer(points_app, name="points")
app.add_typer(members_app, name="members")
app.add_typer(materials_app, name="materials")
app.add_typer(questions_app, name="questions")
essays_app = typer.Typer(help="Study essays: the roll-up, CSV exports.", no_args_is_help=True)
proposals_app = typer.Typer(help="Proposals from the essays: CSV or the printable report.", no_args_is_help=True)
app.add_typer(essays_app, name="essays")
app.add_typer(proposals_app, name="proposals")


class Api:
    """A thin REST client that turns every failure into one clear line on stderr and exit code 1."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the server at {self.url}: {exc}")
        if response.status_code >= 400:
            fail(f"{response.status_code} {describe_error(response)}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()


def describe_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text.strip()
    if isinstance(detail, dict):
        lines = [str(detail.get("message", ""))]
        lines += [f"  row {e['row']}: {e['message']}" for e in detail.get("errors", [])]
        return "\n".join(lines)
    if isinstance(detail, list):  # request validation errors
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
    return str(detail)


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def parse_time(value: str | None) -> str | None:
    """ISO 8601 in UTC; a time without an offset is this computer's local time."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"'{value}' is not a date and time like 2026-05-19T08:00 or 2026-05-19T08:00+07:00")
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.astimezone(dt.UTC).isoformat()


def write_output(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def api(ctx: typer.Context) -> Api:
    return ctx.obj  # type: ignore[no-any-return]


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"diemcau {package_version('diemcau')}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    url: str = typer.Option("http://127.0.0.1:8080", envvar="DIEMCAU_URL", help="server base URL"),
    token: str | None = typer.Option(None, envvar="DIEMCAU_TOKEN", help="admin or organiser token"),
    version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                 help="print the installed version and exit"),
) -> None:
    ctx.obj = Api(url, token)


# --- the server itself (settings from DIEMCAU_* and the config file, not --url/--token) -------------


@app.command("serve")
def serve() -> None:
    """Run the server (what `make run` and the systemd unit run); migrates the database first."""
    from server.main import main as run_server  # the server's imports only for this command

    run_server()


@app.command("migrate")
def migrate() -> None:
    """Bring the database to the newest schema and exit (`serve` does it too, at every start)."""
    from server.db.migrate import upgrade_sync
    from server.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_sync(settings.effective_database_url)
    typer.echo(f"database at the newest schema: {settings.effective_database_url}")


# --- conferences -------------------------------------------------------------------------------


@conference_app.command("create")
def conference_create(
    ctx: typer.Context,
    title: str,
    description: str = typer.Option("", help="shown to participants"),
    start: str | None = typer.Option(None, help="scheduled start, e.g. 2026-05-19T08:00+07:00"),
    end: str | None = typer.Option(None, help="scheduled end"),
    organiser: str | None = typer.Option(None, help="also issue an organiser token with this name"),
) -> None:
    """Create a conference (admin token); print its id, and the organiser link if asked."""
    conf = api(ctx).json("POST", "/api/v1/conferences", json={
        "title": title, "description": description,
        "scheduled_start": parse_time(start), "scheduled_end": parse_time(end),
    })
    typer.echo(conf["id"])
    if organiser:
        token = api(ctx).json("POST", f"/api/v1/conferences/{conf['id']}/tokens",
                              json={"role": "organiser", "name": organiser})
        typer.echo(f"organiser token: {token['token']}")
        typer.echo(f"organiser dashboard: {token['links']['page']}")


@conference_app.command("list")
def conference_list(ctx: typer.Context) -> None:
    """All conferences (admin token)."""
    for c in api(ctx).json("GET", "/api/v1/conferences"):
        typer.echo(f"{c['id']}  {c['status']:<9}  {c['scheduled_start'] or '-':<25}  {c['title']}")


@conference_app.command("set")
def conference_set(
    ctx: typer.Context,
    conference: str,
    status: str | None = typer.Option(None, help="scheduled, live or ended"),
    start: str | None = typer.Option(None, help="scheduled start"),
    end: str | None = typer.Option(None, help="scheduled end"),
    title: str | None = typer.Option(None),
) -> None:
    """Change a conference's status, schedule or title."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = status
    if start is not None:
        changes["scheduled_start"] = parse_time(start)
    if end is not None:
        changes["scheduled_end"] = parse_time(end)
    if title is not None:
        changes["title"] = title
    if not changes:
        fail("nothing to change: give --status, --start, --end or --title")
    conf = api(ctx).json("PATCH", f"/api/v1/conferences/{conference}", json=changes)
    typer.echo(f"{conf['id']}  {conf['status']}  {conf['scheduled_start']} .. {conf['scheduled_end']}  {conf['title']}")


@app.command("token")
def token(
    ctx: typer.Context,
    conference: str,
    role: str = typer.Argument(..., help="organiser, speaker, point, viewer, member, grader or supervisor"),
    name: str = typer.Option("", help="who it is for"),
    expires: str | None = typer.Option(None, help="when it stops working (default: the role's lifetime)"),
) -> None:
    """Issue one token and print it with its join link."""
    body = {"role": role, "name": name, "expires_at": parse_time(expires)}
    out = api(ctx).json("POST", f"/api/v1/conferences/{conference}/tokens", json=body)
    typer.echo(out["token"])
    typer.echo(out["links"]["page"])


@app.command("tokens")
def tokens_list(ctx: typer.Context, conference: str) -> None:
    """Every token of a conference: id, role, state, expiry, name (never the secret)."""
    for t in api(ctx).json("GET", f"/api/v1/conferences/{conference}/tokens"):
        state = "revoked" if t["revoked"] else "expired" if t["expired"] else "active"
        typer.echo(f"{t['id']}  {t['role']:<9}  {state:<7}  expires {t['expires_at'] or 'never':<32}  {t['name']}")


@app.command("revoke")
def revoke(ctx: typer.Context, conference: str, token_id: str = typer.Argument(..., help="id from `tokens`")) -> None:
    """Revoke a token: refused at once, its open sessions closed within seconds."""
    t = api(ctx).json("POST", f"/api/v1/conferences/{conference}/tokens/{token_id}/revoke")
    typer.echo(f"revoked {t['id']} ({t['role']}{', ' + t['name'] if t['name'] else ''}) at {t['revoked_at']}")


# --- points and members ------------------------------------------------------------------------


def upload_csv(ctx: typer.Context, path: Path, url: str, **kwargs: Any) -> Any:
    """POST a CSV file as the request body (an import), with a progress bar on a terminal."""
    size = path.stat().st_size
    with upload_progress(path.name, size) as advance:
        return api(ctx).json("POST", url, content=file_chunks(path, advance),
                             headers={"content-type": "text/csv", "content-length": str(size)}, **kwargs)


@points_app.command("import")
def points_import(
    ctx: typer.Context,
    conference: str,
    csv_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="columns name, level, parent, summoned"),
    update: bool = typer.Option(False, help="update points whose name already exists"),
) -> None:
    """Import connection points from a CSV file (all rows or none)."""
    out = upload_csv(ctx, csv_file, f"/api/v1/conferences/{conference}/points/import",
                     params={"update_existing": str(update).lower()})
    typer.echo(f"imported {out['created']} new point(s), updated {out['updated']}")


@points_app.command("list")
def points_list(ctx: typer.Context, conference: str) -> None:
    """Points as a tree: province, its districts, their communes."""
    points = api(ctx).json("GET", f"/api/v1/conferences/{conference}/points")
    children: dict[str | None, list[dict]] = {}
    ids = {p["id"] for p in points}
    for p in points:
        children.setdefault(p["parent_id"] if p["parent_id"] in ids else None, []).append(p)

    def show(parent: str | None, depth: int) -> None:
        for p in children.get(parent, []):
            typer.echo(f"{'  ' * depth}{p['name']} ({p['level']}, {p['summoned']} summoned)")
            show(p["id"], depth + 1)

    show(None, 0)


@points_app.command("links")
def points_links(
    ctx: typer.Context,
    conference: str,
    output: Path | None = typer.Option(None, "--output", "-o", help="write the CSV here instead of stdout"),
    keep_old: bool = typer.Option(False, help="keep previously issued operator links working"),
) -> None:
    """Issue every point's operator token; print a CSV of name, level, parent, link, token."""
    response = api(ctx).request(
        "POST", f"/api/v1/conferences/{conference}/points/tokens",
        params={"format": "csv"}, json={"revoke_existing": not keep_old},
    )
    write_output(response.content.decode("utf-8-sig"), output)


@members_app.command("import")
def members_import(
    ctx: typer.Context,
    conference: str,
    csv_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="columns name, unit, point"),
) -> None:
    """Import members from a CSV file (all rows or none)."""
    out = upload_csv(ctx, csv_file, f"/api/v1/conferences/{conference}/members/import")
    typer.echo(f"imported {out['created']} member(s)")


@members_app.command("links")
def members_links(
    ctx: typer.Context,
    conference: str,
    output: Path | None = typer.Option(None, "--output", "-o", help="write the CSV here instead of stdout"),
    keep_old: bool = typer.Option(False, help="keep previously issued member links working"),
) -> None:
    """Issue every member's personal link; print a CSV of name, unit, point, link, token."""
    response = api(ctx).request(
        "POST", f"/api/v1/conferences/{conference}/members/tokens",
        params={"format": "csv"}, json={"revoke_existing": not keep_old},
    )
    write_output(response.content.decode("utf-8-sig"), output)


# --- materials ---------------------------------------------------------------------------------


@materials_app.command("upload")
def materials_upload(
    ctx: typer.Context,
    conference: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    title: str = typer.Option("", help="title shown to participants (default: the file name)"),
) -> None:
    """Upload a study document (PDF, DOCX, ...)."""
    with file.open("rb") as fh, upload_progress(file.name, file.stat().st_size) as advance:
        out = api(ctx).json(
            "POST", f"/api/v1/conferences/{conference}/materials",
            files={"file": (file.name, CountingReader(fh, advance), "application/octet-stream")},
            data={"title": title},
        )
    typer.echo(f"{out['id']}  {out['size']} bytes  {out['filename']}")


@materials_app.command("list")
def materials_list(ctx: typer.Context, conference: str) -> None:
    for m in api(ctx).json("GET", f"/api/v1/conferences/{conference}/materials"):
        typer.echo(f"{m['id']}  {m['size']:>10}  {m['title']}  ({m['filename']})")


# --- questions ---------------------------------------------------------------------------------


@questions_app.command("list")
def questions_list(
    ctx: typer.Context,
    conference: str,
    status: str | None = typer.Option(None, help="only open, selected, answered or rejected"),
) -> None:
    """Every written question, newest activity first: id, status, author, text (and the answer)."""
    params = {"status": status} if status else {}
    for q in api(ctx).json("GET", f"/api/v1/conferences/{conference}/questions", params=params):
        merged = f" (merged into {q['merged_into']})" if q["merged_into"] else ""
        votes = f" [{q['votes']}]" if q["merged_count"] else ""
        typer.echo(f"{q['id']}  {q['status']:<8}  {q['author_name']}{votes}: {q['text']}{merged}")
        if q["answer"]:
            typer.echo(f"    -> {q['answer']}")


@questions_app.command("export")
def questions_export(
    ctx: typer.Context,
    conference: str,
    output: Path | None = typer.Option(None, "--output", "-o", help="write the CSV here instead of stdout"),
) -> None:
    """Every question as CSV (author, point level or member unit, times, status, answer, merged into)."""
    response = api(ctx).request("GET", f"/api/v1/conferences/{conference}/questions/export.csv")
    write_output(response.content.decode("utf-8-sig"), output)


# --- study essays and proposals ------------------------------------------------------------------


def format_essay_rollup(rollup: dict) -> str:
    """The province and each district: members, attended (by replay), submitted (late), graded, grades."""
    lines = [f"{'':<28} {'members':>7} {'attended':>8} {'replay':>6} {'submitted':>9} {'rate':>6} {'late':>4} "
             f"{'graded':>6}  grades"]
    for line in [{"name": "Total", "subtree": rollup["totals"]}, *rollup["province"], *rollup["districts"]]:
        c = line["subtree"]
        rate = f"{c['submitted_rate']:g}%" if c["submitted_rate"] is not None else "-"
        grades = ", ".join(f"{g}: {n}" for g, n in c["grades"].items() if n)
        lines.append(f"{line['name'][:28]:<28} {c['members']:>7} {c['attended']:>8} {c['replay']:>6} "
                     f"{c['submitted']:>9} {rate:>6} {c['late']:>4} {c['graded']:>6}  {grades}")
    lines.append(f"Not submitted: {len(rollup['not_submitted'])} (diemcau essays export <conf> --table not_submitted)")
    return "\n".join(lines)


@essays_app.command("status")
def essays_status(ctx: typer.Context, conference: str) -> None:
    """Per district and for the province: members, attended, made up by replay, submitted, late, graded."""
    typer.echo(format_essay_rollup(api(ctx).json("GET", f"/api/v1/conferences/{conference}/essays/rollup")))


@essays_app.command("export")
def essays_export(
    ctx: typer.Context,
    conference: str,
    table: str = typer.Option("essays", help="essays, points, districts or not_submitted"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write the CSV here instead of stdout"),
) -> None:
    """A roll-up table as CSV: every essay with its grade, per point, per district, or who has not submitted."""
    response = api(ctx).request("GET", f"/api/v1/conferences/{conference}/essays/rollup.csv", params={"table": table})
    write_output(response.content.decode("utf-8-sig"), output)


@proposals_app.command("export")
def proposals_export(
    ctx: typer.Context,
    conference: str,
    report: bool = typer.Option(False, "--html", help="the printable report (one page per district) instead of CSV"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write it here instead of stdout"),
) -> None:
    """Every proposal (field, title, member, point, district, duplicates merged, forwarded) as CSV, or
    the printable HTML report to send up."""
    path = "report.html" if report else "export.csv"
    response = api(ctx).request("GET", f"/api/v1/conferences/{conference}/proposals/{path}")
    write_output(response.content.decode("utf-8-sig"), output)


# --- the floor ---------------------------------------------------------------------------------

FLOOR_ACTIONS = ("state", "grant", "end", "history", "lock", "unlock", "end-all")


def _clock(iso: str | None) -> str:
    """An API time as this computer's local time, to the second."""
    if not iso:
        return "-"
    return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_floor(state: dict) -> str:
    """Who holds the floor, then the queue in order."""
    lines = []
    c = state["current"]
    if c is None:
        lines.append("Nobody holds the floor.")
    else:
        limit = f", until {_clock(c['ends_at'])}" if c["ends_at"] else ""
        muted = ", MUTED" if c["muted"] else ""
        lines.append(f"Floor: {c['point_name']} ({c['level']}) since {_clock(c['granted_at'])}{limit};"
                     f" media {c['media']}{muted}" + (f" - {c['subject']}" if c["subject"] else ""))
    queue = state.get("queue") or []
    lines.append(f"Queue ({len(queue)}{', locked' if state['locked'] else ''}):")
    for n, e in enumerate(queue, 1):
        quality = e.get("quality") or {}
        link = f" [loss {quality['loss_percent']}%]" if quality.get("loss_percent") is not None else ""
        subject = f" - {e['subject']}" if e["subject"] else ""
        lines.append(f"  {n}. {e['point_name']} ({e['level']}, {e['point_id']}) since {_clock(e['requested_at'])}"
                     f"{link}{subject}")
    return "\n".join(lines) + "\n"


def format_floor_history(events: list[dict]) -> str:
    lines = []
    for e in events:
        extra = [x for x in (
            e["subject"],
            f"{e['duration_seconds']:.0f} s" if e["duration_seconds"] is not None else "",
            e["reason"] or "",
        ) if x]
        lines.append(f"{_clock(e['at'])}  {e['kind']:<9} {e['point_name']}" + (f"  ({'; '.join(extra)})" if extra else ""))
    return "\n".join(lines) + "\n" if lines else "No floor events yet.\n"


def _point_id(ctx: typer.Context, conference: str, point: str) -> str:
    """A point given by id or by its exact name."""
    points = api(ctx).json("GET", f"/api/v1/conferences/{conference}/points")
    if any(p["id"] == point for p in points):
        return point
    named = [p["id"] for p in points if p["name"] == point]
    if not named:
        fail(f"no point with the id or name '{point}' in this conference")
    return named[0]


@app.command("floor")
def floor(
    ctx: typer.Context,
    conference: str,
    action: str = typer.Argument("state", help="state, grant, end, history, lock, unlock or end-all"),
    point: str | None = typer.Argument(None, help="grant: the point, by id or name"),
    limit: int | None = typer.Option(None, "--limit", help="grant: the floor ends after this many seconds"),
) -> None:
    """The floor: who speaks and the raised hands; grant it to a point, end it, its history."""
    base = f"/api/v1/conferences/{conference}/floor"
    if action not in FLOOR_ACTIONS:
        fail(f"the action must be one of {', '.join(FLOOR_ACTIONS)}")
    if action == "grant":
        if point is None:
            fail("grant needs the point: diemcau floor CONF grant POINT [--limit SECONDS]")
        body = {"point_id": _point_id(ctx, conference, point), "limit_seconds": limit}
        typer.echo(format_floor(api(ctx).json("POST", f"{base}/grant", json=body)), nl=False)
    elif action == "history":
        typer.echo(format_floor_history(api(ctx).json("GET", f"{base}/history")), nl=False)
    elif action in ("lock", "unlock"):
        state = api(ctx).json("POST", f"{base}/lock", json={"locked": action == "lock"})
        typer.echo(format_floor(state), nl=False)
    elif action in ("end", "end-all"):
        typer.echo(format_floor(api(ctx).json("POST", f"{base}/{action}")), nl=False)
    else:
        typer.echo(format_floor(api(ctx).json("GET", base)), nl=False)


# --- attendance --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def format_report(report: dict) -> str:
    """The report as plain text for a terminal or a quick e-mail."""
    t, conf, m = report["totals"], report["conference"], report["members"]
    lines = [
        f"Attendance: {conf['title']} ({conf['status']})",
        f"Present {t['present']:,} of {t['summoned']:,} summoned: {_pct(t['rate'])}",
        f"Points: {t['points']} | connected {t['connected']} | now {t['connected_now']} | late {t['late']}"
        f" | left early {t['left_early']} | never {t['never_connected']} | headcount reported {t['reported']}",
        "",
        f"{'level':<10} {'points':>6} {'conn.':>6} {'summoned':>9} {'present':>8} {'rate':>7}",
    ]
    for r in report["by_level"]:
        lines.append(
            f"{r['level']:<10} {r['points']:>6} {r['connected']:>6} {r['summoned']:>9} {r['present']:>8}"
            f" {_pct(r['rate']):>7}"
        )
    lines += ["", f"{'by parent':<30} {'points':>6} {'summoned':>9} {'present':>8} {'rate':>7}"]
    for r in report["by_parent"]:
        lines.append(
            f"{r['name'][:30]:<30} {r['points']:>6} {r['summoned']:>9} {r['present']:>8} {_pct(r['rate']):>7}"
        )
    for key, title, extra in (
        ("late", "Joined late", lambda x: f"+{x['minutes_late']} min"),
        ("left_early", "Left early", lambda x: f"-{x['minutes_early']} min"),
        ("never_connected", "Never connected", lambda x: ""),
    ):
        lines += ["", f"{title} ({len(report[key])}):"]
        lines += [f"  {x['name']} ({x['level']}) {extra(x)}".rstrip() for x in report[key]]
    lines += [
        "",
        f"Members: {m['total']} | live {m['attended_live']} | at their point {m['via_point']}"
        f" | made up by replay {m['made_up_by_replay']} | absent {m['absent']}",
    ]
    lines += [
        f"  made up by replay: {x['name']} ({x['unit']}) watched {x['minutes_watched']} min"
        + (f" ({_pct(x['percent_watched'])})" if x["percent_watched"] is not None else "")
        for x in m["replay"]
    ]
    if "questions" in report:
        q = report["questions"]
        by = " | ".join(f"{s} {n}" for s, n in q["by_status"].items())
        lines += ["", f"Questions: {q['total']} | {by} | merged {q['merged']}"]
    if "floor" in report:
        f = report["floor"]
        lines += ["", f"Floor: {f['total_turns']} turn(s), {f['total_seconds'] / 60:.1f} min, {f['requests']} hand(s) raised"]
        lines += [
            f"  {x['point_name']} ({x['level']}): {x['turns']} turn(s), {x['seconds'] / 60:.1f} min"
            + (f" - {'; '.join(x['subjects'])}" if x["subjects"] else "")
            for x in f["points"]
        ]
    if "quality" in report:  # link quality: the share of watching points with a poor link
        lines += ["", f"Poor links: {t['poor_links']} of {t['points_watched']} points watching ({_pct(t['poor_share'])})"]
        lines += [
            f"  {r['name']} ({r['level']}): {r['poor_links']} of {r['points_watched']} ({_pct(r['poor_share'])})"
            for r in report["by_parent"] if r["poor_links"]
        ]
    return "\n".join(lines) + "\n"


@app.command("report")
def report(
    ctx: typer.Context,
    conference: str,
    format: str = typer.Option("text", "--format", "-f", help="text, json, csv or html"),
    table: str = typer.Option("points", help="CSV table: points, levels, parents, late, left_early, "
                              "never_connected, replay, absent, floor, floor_turns, quality, quality_rollup, "
                              "questions"),
    output: Path | None = typer.Option(None, "--output", "-o", help="write to this file instead of stdout"),
) -> None:
    """Print the attendance report."""
    base = f"/api/v1/conferences/{conference}/attendance"
    if format == "text":
        write_output(format_report(api(ctx).json("GET", f"{base}/report")), output)
    elif format == "json":
        data = api(ctx).json("GET", f"{base}/report")
        write_output(json.dumps(data, ensure_ascii=False, indent=2) + "\n", output)
    elif format == "csv":
        response = api(ctx).request("GET", f"{base}/report.csv", params={"table": table})
        write_output(response.content.decode("utf-8-sig"), output)
    elif format == "html":
        write_output(api(ctx).request("GET", f"{base}/report.html").text, output)
    else:
        fail("--format must be text, json, csv or html")


@app.command("status")
def status(ctx: typer.Context, conference: str) -> None:
    """Which points are connected right now."""
    s = api(ctx).json("GET", f"/api/v1/conferences/{conference}/attendance/status")
    t = s["totals"]
    typer.echo(f"connected {t['connected']}/{t['points']} | headcounts {t['reported']} | "
               f"present {t['present']:,}/{t['summoned']:,} ({_pct(t['rate'])}) | members online {t['members_online']}")
    for p in s["points"]:
        if not p["connected"]:
            typer.echo(f"  offline: {p['name']} ({p['level']})")


@app.command("check")
def check(
    link: str = typer.Argument(..., help="the point's join link (https://HOST/point.html#conference=…&token=…), "
                               "or the server's address with --conference and --token"),
    conference: str | None = typer.Option(None, help="the conference id, when the link has none"),
    token: str | None = typer.Option(None, "--token", help="the point's token, when the link has none"),
    ca_file: Path | None = typer.Option(None, "--ca-file", exists=True, dir_okay=False,
                                        help="also trust this certificate authority (PEM), e.g. an internal one"),
) -> None:
    """Pre-flight check from a point's own network: HTTPS, the WebSocket, ICE to the media port,
    TURN, a short WHEP receive; says in plain words (Vietnamese and English) what is blocked."""
    import asyncio

    from server.preflight import passed, render, run_checks
    from server.preflight_web import parse_target

    try:
        target = parse_target(link, conference, token, ca_file)
    except ValueError as exc:
        fail(str(exc))
    findings = asyncio.run(run_checks(target))
    typer.echo(render(findings), nl=False)
    if not passed(findings):
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
