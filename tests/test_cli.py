"""The command line end to end, as an operator would use it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import FACES, make_workspace, subject_images
from fieldid.access import Role
from helpers_cli import cli, tokens

USE = ["--purpose", "field-identification", "--case", "CASE-9"]


def run(*args: str, token: str | None = None) -> tuple[int, str]:
    r = cli(list(args), token)
    return r.exit_code, r.output


def test_init_enroll_search_verify(backend, tmp_path):
    ws = tmp_path / "ws"
    make_workspace(ws).close()  # as `fieldid init`, with a gate that admits LFW photos
    tok = tokens(ws)
    admin, officer = tok[Role.ADMIN], tok[Role.OFFICER]
    src = tmp_path / "people"
    for n in (1, 2, 3):
        sid = f"subject-{n:04d}"
        (src / sid).mkdir(parents=True)
        shutil.copy(subject_images(sid)[0], src / sid)

    code, out = run("enroll", "--workspace", str(ws), str(src), "--json", token=admin)
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["enrolled"] == 3 and summary["gallery"] == {"persons": 3, "templates": 3}

    code, out = run("enroll", "--workspace", str(ws), str(src), "--json", token=admin)
    again = json.loads(out[out.index("{") :])
    assert (again["enrolled"], again["already_enrolled"]) == (0, 3)

    probe = subject_images("subject-0002")[1]
    code, out = run("search", "--workspace", str(ws), str(probe), *USE, "--json", token=officer)
    assert code == 0, out
    result = json.loads(out)
    assert isinstance(result["search_id"], str) and isinstance(result["audit_seq"], int)
    assert "search_ref" not in result
    assert result["notice"] == "possible match: a lead, not an identification"
    assert result["candidates"][0]["external_id"] == "subject-0002"
    assert result["candidates"][0]["rank"] == 1
    assert {"unified", "band", "measures"} <= set(result["quality"])
    assert result["capture"] == "file"  # the command line searches a file

    code, out = run("search", "--workspace", str(ws), str(probe), *USE, token=officer)
    assert code == 0 and "subject-0002" in out and "a lead, not an identification" in out
    assert "photo from a file: fieldid cannot tell a photo of a photo from a live" in out

    a, b = subject_images("subject-0001")[:2]
    code, out = run("verify", "--workspace", str(ws), str(a), str(b), *USE, "--json", token=officer)
    assert code == 0, out
    v = json.loads(out)
    assert v["above_threshold"] is True and 0 < v["score"] <= 1 and "verify_ref" not in v


def _init(tmp_path: Path) -> tuple[Path, str]:
    """``fieldid init`` as a script runs it: the admin's token written to a file."""
    ws = tmp_path / "ws"
    code, out = run("init", str(ws), "--generate-password", "--token-out", str(tmp_path / "t"))
    assert code == 0, out
    return ws, tokens(ws)[Role.OFFICER]


def test_refused_probe_exits_non_zero_with_its_reason(tmp_path):
    ws, officer = _init(tmp_path)
    # The default gate wants 60 px between the eyes; LFW photos have about 42.
    photo = str(subject_images("subject-0001")[0])
    code, out = run("search", "--workspace", str(ws), photo, *USE, token=officer)
    assert code == 2
    # Worded for a file, not for a person in front of the camera.
    assert "quality.too_far" in out and "the face is too small in this photo" in out
    assert "move closer" not in out

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    code, out = run("search", "--workspace", str(ws), str(bad), *USE, "--json", token=officer)
    assert code == 2
    assert json.loads(out)["error"]["code"].startswith("probe.")


def test_search_without_a_permitted_purpose_or_case_is_refused_with_every_problem(tmp_path):
    ws, officer = _init(tmp_path)
    photo = str(subject_images("subject-0001")[0])
    args = ["--purpose", "browsing", "--case", "C"]
    code, out = run("search", "--workspace", str(ws), photo, *args, token=officer)
    assert code == 2 and "use.purpose_not_permitted" in out
    args = ["--purpose", "browsing", "--case", " ", "--json"]
    code, out = run("search", "--workspace", str(ws), photo, *args, token=officer)
    err = json.loads(out)["error"]
    assert err["code"] == "use.several"
    assert {p["code"] for p in err["problems"]} == {"use.purpose_not_permitted", "use.no_case"}


def test_not_a_workspace_says_how_to_make_one(tmp_path):
    code, out = run("search", "--workspace", str(tmp_path), "x.jpg", *USE)
    assert code == 2 and "fieldid init" in out


def test_eval_reports_the_metrics(tmp_path):
    cache = str(tmp_path / "templates.npz")
    args = ["--json", "--max-impostor-pairs", "2000", "--cache", cache]
    code, out = run("eval", "--dataset", str(FACES), *args)
    assert code == 0, out
    report = json.loads(out[out.index("{") :])
    assert report["images"] == 40 and report["identities"] == 20
    assert report["failure_to_acquire"]["count"] == 0
    v = report["verification"]
    assert v["genuine_pairs"] == 30
    assert v["genuine_mean"] > v["impostor_mean"]
    assert [p["far"] for p in v["tar_at_far"]] == [1e-2, 1e-3, 1e-4]
    ident = report["identification"]
    assert ident["mated_searches"] > 0 and ident["nonmated_searches"] > 0
    assert ident["rank1"] >= 0.8
    # Same seed, same report (timings aside: the second run reads the cached templates).
    code, out2 = run("eval", "--dataset", str(FACES), *args)
    again = json.loads(out2[out2.index("{") :])
    assert report.pop("median_timings_ms") and again.pop("median_timings_ms") == {}
    assert again == report
