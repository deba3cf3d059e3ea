"""API fuzzing with schemathesis: every operation of the OpenAPI schema, as every role, never a 5xx.

One real server (its own data dir, an ingest and a media worker) holds one conference with connection
points, members, an agenda item, a material, spare tokens and a recording that is live for the whole
module (a speaker publishes a small clip over WHIP). For each operation and each role (anonymous,
viewer, member, point, speaker, organiser, admin) schemathesis generates valid and invalid requests
(positive and negative modes); path parameters are the fixture's real ids most of the time, so the
requests get past "unknown conference" into the handlers, and generated ids otherwise. A few valid
requests on the real ids first tell whether the role gets past the authorization check at all: a role
refused every one (401/403) gets only a few generated requests, one that gets past the full number.
Each response must not be a 5xx, and each call must return within ``CALL_TIMEOUT`` (no hang).

Operations run one at a time for all roles, the ones that destroy state last (stopping the recording,
ending the conference, deletions, revocations), and the real ids offered to destructive operations are
spare objects, never the ones the role tokens belong to; a role token that an earlier operation
revoked anyway (e.g. issuing every point's link again) is minted anew before the next test.

Nothing is excluded. WHIP/WHEP POST bodies cannot be a valid SDP offer when generated, so these
requests never start media; they must be refused with a 4xx like any other bad input (the SDP
parser has its own fuzzing). ``session_id`` of WHIP/WHEP sessions is always generated: the only real
session is the publisher's, and deleting it would end the live recording the other operations use.
"""

from __future__ import annotations

import functools
import itertools
import os
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from server.app import create_app
from server.settings import Settings
from tests.support.background import BackgroundPublisher
from tests.support.http import http
from bench.clip import test_clip
from tests.support.server import ServerFactory, ServerProcess
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,  # over ~10 s: `make test-fast` leaves it out
    pytest.mark.filterwarnings(
        # schemathesis draws some choices from the global ``random`` (hypothesis seeds it per example)
        "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
    ),
]

ROLES = ("anonymous", "viewer", "member", "point", "speaker", "organiser", "admin")
PROBE_EXAMPLES = 4  # valid requests on the real ids: does the role get past the authorization check?
REFUSED_EXAMPLES = 2  # then generated requests for a role the operation refuses (test_authz_matrix covers refusals)
# Requests in all (the probe's included) for a role that gets past the check: 12 keeps `make test` near its
# 20 minutes on two cores; DIEMCAU_FUZZ_EXAMPLES=200 for a deeper run.
EXAMPLES = int(os.environ.get("DIEMCAU_FUZZ_EXAMPLES", "12"))
REFUSED = (401, 403)
LINK_EXAMPLES = 200  # signed-link queries and Range headers (not in the schema)
CALL_TIMEOUT = 10.0  # seconds; a request still unanswered by then is a hang


@dataclass
class World:
    """The fuzzed server and the real objects whose ids the generated requests use."""

    server: ServerProcess
    conference: str
    ids: dict[str, list[str]]  # path parameter name -> real ids offered to the fuzzer
    subjects: dict[str, str]  # role -> subject id (point, member) of its token
    tokens: dict[str, str] = field(default_factory=dict)
    publisher: BackgroundPublisher | None = None

    def admin(self) -> httpx.Client:
        return self.server.admin()

    def mint(self, role: str) -> str:
        """A token for ``role`` in the conference: points and members get their subject's link."""
        with self.admin() as c:
            if role in ("point", "member"):
                r = c.post(f"/api/v1/conferences/{self.conference}/{role}s/{self.subjects[role]}/token")
            else:
                r = c.post(f"/api/v1/conferences/{self.conference}/tokens", json={"role": role, "name": role})
            r.raise_for_status()
            return r.json()["token"]

    def headers(self, role: str) -> dict[str, str]:
        """The role's Authorization header, minting its token again if a fuzzed request revoked it."""
        if role == "anonymous":
            return {}
        if role == "admin":
            return {"Authorization": f"Bearer {self.server.admin_token}"}
        token = self.tokens.get(role)
        if token is not None:
            r = http.get(
                f"{self.server.url}/api/v1/conferences/{self.conference}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=CALL_TIMEOUT,
            )
            if r.status_code == 401:
                token = None
        if token is None:
            token = self.tokens[role] = self.mint(role)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(start_server: ServerFactory) -> Iterator[World]:
    server = start_server("fuzz", workers=2)
    publisher: BackgroundPublisher | None = None
    try:
        conference = server.create_conference("Hội nghị kiểm thử API")
        base = f"/api/v1/conferences/{conference}"
        with server.admin() as c:
            points = [
                c.post(f"{base}/points", json={"name": f"Xã {i}", "level": "commune"}).json()["id"]
                for i in range(3)
            ]
            members = [
                c.post(f"{base}/members", json={"name": f"Đảng viên {i}", "point_id": points[0]}).json()["id"]
                for i in range(3)
            ]
            item = c.post(f"{base}/agenda", json={"title": "Quán triệt nghị quyết"}).json()["id"]
            material = c.post(
                f"{base}/materials",
                files={"file": ("nghi-quyet.txt", io.BytesIO("Nghị quyết số 1".encode()), "text/plain")},
                data={"title": "Nghị quyết"},
            ).json()["id"]
            questions = [
                c.post(f"{base}/questions", json={"text": f"Câu hỏi {i}"}).json()["id"] for i in range(2)
            ]
            spare_tokens = [
                c.post(f"{base}/tokens", json={"role": role, "name": f"spare {role}"}).json()["id"]
                for role in ("viewer", "organiser")
            ]
        world = World(
            server,
            conference,
            ids={
                "conference_id": [conference],
                "point_id": points[1:],
                "member_id": members[1:],
                "item_id": [item],
                "material_id": [material],
                "token_id": spare_tokens,
                "question_id": questions,
            },
            subjects={"point": points[0], "member": members[0]},
        )
        for role in ROLES[1:-1]:
            world.tokens[role] = world.mint(role)
        small = test_clip(seconds=4.0, width=320, height=240, fps=15, kbps=300)
        publisher = world.publisher = BackgroundPublisher(server.url, conference, world.tokens["speaker"], small)
        publisher.start()
        with server.admin() as c:
            recording = wait_until(
                lambda: (r := c.get(f"{base}/recording")).status_code == 200 and r.json()["id"],
                30, "the live recording",
            )
            chapter = c.post(f"{base}/recording/chapters", json={"title": "Chương 1"}).json()["id"]
            playlist = wait_until(
                lambda: (r := c.get(f"/hls/{conference}/{recording}/index.m3u8")).status_code == 200
                and "#EXTINF" in r.text
                and r.text,
                30, "a recorded segment",
            )
        files = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        world.ids.update(recording_id=[recording], chapter_id=[chapter], name=["index.m3u8", *files[:2]])
        yield world
    finally:
        if publisher is not None:
            publisher.stop()
        server.stop()


def _openapi() -> dict:
    """The app's OpenAPI document, built from the app object when the module is collected, so each
    operation is a test of its own (a new route is fuzzed without touching this file)."""
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(Settings(data_dir=Path(data_dir), admin_token="x" * 32)).openapi()


SPEC = _openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)


def _destructiveness(label: str) -> tuple[int, str]:
    """Sort key: reads and creations first, then what ends the recording or the conference, then
    deletions and revocations, so the earlier operations still find the state they exercise."""
    method, path = label.split(" ", 1)
    if (path.endswith("/revoke") or path.endswith("/token") or path.endswith("/moderation/remove")
            or path.endswith("/tokens") and method == "POST"):
        rank = 4
    elif method == "DELETE":
        rank = 3
    elif path.endswith("/recording/stop") or (method == "PATCH" and path.endswith("{conference_id}")):
        rank = 2
    else:
        rank = 0
    return rank, label


OPERATIONS = sorted(
    (f"{method.upper()} {path}" for path, ops in SPEC["paths"].items() for method in ops), key=_destructiveness
)


BOTH_MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@functools.cache
def _strategy(
    label: str, fixed: tuple[tuple[str, str], ...], modes: tuple[GenerationMode, ...] = BOTH_MODES
):  # type: ignore[no-untyped-def]
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None, label
    return st.one_of(
        operation.as_strategy(generation_mode=mode, path_parameters=dict(fixed) or None) for mode in modes
    )


def _known_ids(world: World, label: str) -> list[str]:
    """The operation's path parameters the world has real ids for."""
    return [p for p in label.split(" ", 1)[1].replace("}", "{").split("{")[1::2] if p in world.ids]


def _cases(world: World, label: str):  # type: ignore[no-untyped-def]
    """Cases whose path parameters are real ids or generated ones, in every combination.

    The strategies are built here, before drawing: building one inside a draw touches the global
    ``random`` state, which hypothesis rightly warns about.
    """
    names = _known_ids(world, label)
    combos = itertools.product(*([None, *world.ids[n]] for n in names))
    strategies = [
        _strategy(label, tuple((n, v) for n, v in zip(names, values) if v is not None)) for values in combos
    ]
    return st.one_of(reversed(strategies))  # shrinking leans to the first: real ids


def _valid_cases(world: World, label: str):  # type: ignore[no-untyped-def]
    """Valid requests (positive mode) on the first real id of each path parameter: what a role the
    operation refuses gets 401 or 403 for, before any handler looks at the input."""
    fixed = tuple((n, world.ids[n][0]) for n in _known_ids(world, label))
    return _strategy(label, fixed, (GenerationMode.POSITIVE,))


@pytest.mark.parametrize(("label", "role"), [(label, role) for label in OPERATIONS for role in ROLES])
def test_no_server_error(world: World, label: str, role: str) -> None:
    headers = world.headers(role)
    statuses: list[int] = []
    with requests.Session() as session:

        def fuzz(case: schemathesis.Case) -> None:
            try:
                response = case.call(
                    base_url=world.server.url, session=session, headers=headers, timeout=CALL_TIMEOUT
                )
            except requests.Timeout as exc:
                raise AssertionError(f"{label} as {role}: no answer within {CALL_TIMEOUT} s") from exc
            statuses.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error], headers=headers)

        def run(cases, examples: int) -> None:  # type: ignore[no-untyped-def]
            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=cases)
            def generated(case: schemathesis.Case) -> None:
                fuzz(case)

            generated()

        run(_valid_cases(world, label), PROBE_EXAMPLES)
        # A role refused every valid request (401/403) never reaches the handler: its invalid input
        # meets the same validation (422) and conference lookup (404) the allowed roles are fuzzed
        # through, so a few generated requests show it is refused whatever it sends.
        refused = all(status in REFUSED for status in statuses)
        run(_cases(world, label), REFUSED_EXAMPLES if refused else max(EXAMPLES - PROBE_EXAMPLES, 1))


# Inputs the schema does not describe: the signed-link query (``exp``, ``sig``) and ``?token=`` that
# players put on HLS and download URLs, and the ``Range`` header of the MP4 download.
_PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_DIGITS = st.text(  # what str.isdigit() accepts: "9", "٣" (int() takes both), "²", "①" (it does not)
    st.one_of(st.characters(categories=["Nd", "No"]).filter(str.isdigit), st.sampled_from("0123456789")),
    min_size=1,
    max_size=12,
)
_FUTURE = st.integers(min_value=4_102_444_800, max_value=10**12 - 1).map(str)  # 2100 on: unexpired
_TEXT = st.one_of(st.text(max_size=40), _PRINTABLE)
_LINK_QUERY = st.fixed_dictionaries(
    {},
    optional={
        "exp": st.one_of(_FUTURE, _DIGITS, _TEXT, st.integers(min_value=-(2**70), max_value=2**70).map(str)),
        "sig": st.one_of(_TEXT, st.tuples(_TEXT, _TEXT).map(".".join)),
        "token": _TEXT,
    },
)


@given(
    target=st.sampled_from(["live", "replay", "segment", "download"]),
    query=_LINK_QUERY,
    range_header=st.one_of(st.none(), _PRINTABLE.map("bytes={}".format), _PRINTABLE).map(
        lambda v: v and v.strip()  # a header value cannot end in a space
    ),
)
@settings(
    max_examples=LINK_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_signed_link_inputs_never_a_server_error(
    world: World, target: str, query: dict[str, str], range_header: str | None
) -> None:
    recording = world.ids["recording_id"][0]
    path = {
        "live": f"/hls/{world.conference}/index.m3u8",
        "replay": f"/hls/{world.conference}/{recording}/index.m3u8",
        "segment": f"/hls/{world.conference}/{recording}/{world.ids['name'][-1]}",
        "download": f"/recordings/{recording}/download.mp4",
    }[target]
    headers = {"Range": range_header} if range_header else {}
    try:
        r = http.get(f"{world.server.url}{path}", params=query, headers=headers, timeout=CALL_TIMEOUT)
    except httpx.TimeoutException as exc:
        raise AssertionError(f"{path} {query}: no answer within {CALL_TIMEOUT} s") from exc
    assert r.status_code < 500, f"{path} {query} Range={range_header!r}: {r.status_code} {r.text[:300]}"


# CSV imports: the schema says "a string", so generated bodies almost never get past the header row.
# Here the header names real columns and the cells are any text, digits of every script included.
_CSV_COLUMNS = {  # required, optional
    "points": (["name", "level"], ["parent", "summoned", "operator"]),
    "members": (["name"], ["unit", "point"]),
}
_CELL = st.one_of(
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=12),  # csv refuses NUL (a 400)
    st.text(max_size=12),
    _DIGITS,
    _DIGITS,
    st.sampled_from(["commune", "district", "province", "xã", "huyện", "tỉnh", "Xã 1", "1.000", "=1+1"]),
)


def _csv_text(required: list[str], optional: list[str]) -> st.SearchStrategy[str]:
    """A header of the required columns and some optional ones in any order (or any columns at
    all, now and then), then a few rows of arbitrary cells."""
    header = st.one_of(
        st.sets(st.sampled_from(optional)).flatmap(lambda extra: st.permutations(required + sorted(extra))),
        st.lists(st.sampled_from(required + optional), min_size=1, max_size=6),
    )
    return header.flatmap(
        lambda names: st.lists(st.lists(_CELL, min_size=len(names), max_size=len(names)), max_size=4).map(
            lambda rows: "\n".join(",".join(cells) for cells in [names, *rows]) + "\n"
        )
    )


@given(data=st.data(), what=st.sampled_from(sorted(_CSV_COLUMNS)))
@settings(
    max_examples=LINK_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_csv_imports_never_a_server_error(world: World, data: st.DataObject, what: str) -> None:
    body = data.draw(_csv_text(*_CSV_COLUMNS[what]), label="csv")
    try:
        r = http.post(
            f"{world.server.url}/api/v1/conferences/{world.conference}/{what}/import",
            content=body.encode(),
            headers={"Content-Type": "text/csv", **world.headers("organiser")},
            timeout=CALL_TIMEOUT,
        )
    except httpx.TimeoutException as exc:
        raise AssertionError(f"{what} import: no answer within {CALL_TIMEOUT} s") from exc
    assert r.status_code < 500, f"{what} import of {body!r}: {r.status_code} {r.text[:300]}"


# --- Regression tests for what the fuzzing found ----------------------------------------------------


@pytest.mark.parametrize("path", ["members", "attendance/sessions"])
def test_an_offset_past_any_database_integer_is_refused(server: ServerProcess, path: str) -> None:
    """``offset=2**70`` reached SQLite as a bind parameter it cannot hold: 500 (OverflowError)."""
    conference = server.create_conference()
    with server.admin() as c:
        r = c.get(f"/api/v1/conferences/{conference}/{path}", params={"offset": 2**70, "limit": 10})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["query", "offset"]
        assert c.get(f"/api/v1/conferences/{conference}/{path}", params={"offset": 2**31 - 1}).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"exp": "²", "sig": "x"},  # "²".isdigit() but int("²") raised ValueError
        {"exp": "99999999999", "sig": "é"},  # compare_digest raised TypeError on a non-ASCII str
        {"exp": "99999999999", "sig": "tokenid.\x80"},
    ],
)
def test_a_malformed_signed_link_is_a_401(server: ServerProcess, query: dict[str, str]) -> None:
    conference = server.create_conference()
    for path in (f"/hls/{conference}/index.m3u8", f"/hls/{conference}/0123456789abcdef/index.m3u8"):
        r = httpx.get(f"{server.url}{path}", params=query, timeout=CALL_TIMEOUT)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert "signed link" in r.json()["detail"]


@pytest.mark.parametrize("summoned", ["²", "፩", "1①"])
def test_a_summoned_count_of_non_decimal_digits_is_a_row_error(server: ServerProcess, summoned: str) -> None:
    """``str.isdigit()`` accepts these, ``int()`` does not: the import raised ValueError (500)."""
    conference = server.create_conference()
    body = f"name,level,summoned\nXã Tân Lập,commune,{summoned}\n".encode()
    with server.admin() as c:
        r = c.post(
            f"/api/v1/conferences/{conference}/points/import", content=body, headers={"Content-Type": "text/csv"}
        )
    assert r.status_code == 400, r.text
    [error] = r.json()["detail"]["errors"]
    assert error["row"] == 2 and "summoned" in error["message"], error
