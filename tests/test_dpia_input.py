"""Hostile and careless input to `kroniker dpia`, through the command as a DPO runs it (`kroniker.cli.main`, and a
real process where the operating system's bytes matter), against real SQLite and PostgreSQL databases.

Every case: a readable message, exit status 2, never a traceback or a raw Python error, and nothing written. The
expected codes and limits come from docs/dpia.md (the table of codes, the documented limits), not from the code."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kroniker.cli import main
from kroniker.dpia import model
from kroniker.dpia.store import Store
from tests.dpia_support import SOR, get, resolve, template

TODAY = "2026-12-01"
RAW_ERRORS = ("Traceback", "RecursionError", "UnicodeEncodeError", "UnicodeDecodeError", "ValueError", "DataError",
              "KeyError", "set KRONIKER_DEBUG")
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KRONIKER_DATABASE", "KRONIKER_LANG", "KRONIKER_DEBUG", "KRONIKER_AUTHOR", "KRONIKER_DPIA_MAX_BYTES",
                 "KRONIKER_DPIA_MAX_DEPTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRONIKER_HOME", str(tmp_path / "home"))


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'register.db'}"


def dpia(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dpia", *args])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a command that must be refused cleanly; its error text."""
    code, out, err = dpia(capsys, *args)
    assert code == 2, (code, out, err)
    assert not any(raw in err for raw in RAW_ERRORS), err
    return err


def state(url: str) -> dict[str, Any]:
    """Everything the register tables hold, to show that a refusal wrote nothing."""
    store = Store.open(url)
    try:
        infos = store.registers(include_retired=True)
        return {i.id: (i.head, i.retired, [(r.number, r.hash) for r in store.revisions(i.id)],
                       [(s.name, s.revision) for s in store.sign_offs(i.id)]) for i in infos}
    finally:
        store.close()


def write(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return str(path)


def stand_alone(register_id: str = "other") -> dict[str, Any]:
    return template() | {"id": register_id, "kind": "register"}


def export_of(capsys: pytest.CaptureFixture[str], db: str, register: str) -> dict[str, Any]:
    code, out, err = dpia(capsys, "export", "--database", db, register)
    assert code == 0, err
    return dict(json.loads(out))


# -- one import, one transaction -----------------------------------------------------------------------------

def test_an_import_is_all_or_nothing_across_files(database_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The first file is a new register, the second a change to the template, the third a clinic's export whose
    template revision this database does not have: it can only be refused once the store is asked, after the two
    before it were taken in. None of the three may stay."""
    assert dpia(capsys, "init", "--database", database_url)[0] == 0
    exported = export_of(capsys, database_url, "lbp")
    changed = copy.deepcopy(exported["register"])
    changed["title"] += " (rev. 2)"
    clinic = {"format": model.EXPORT_FORMAT,
              "register": stand_alone(f"clinic-{SOR}") | {"kind": "clinic"},
              "revision": exported["revision"],
              "adoption": {"template": "lbp", "template_revision": {"number": 7, "hash": "sha256:" + "0" * 64},
                           "delta": {}}}
    before = state(database_url)
    err = refused(capsys, "import", "--database", database_url, write(tmp_path / "other.json", stand_alone()),
                  write(tmp_path / "lbp.json", changed), write(tmp_path / "clinic.json", clinic))
    assert "clinic.json:" in err and "lbp r7" in err
    assert "none of the 3 files was imported" in err
    assert state(database_url) == before, "the first two files were written although the third was refused"


def test_the_danish_message_says_nothing_was_imported(db: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    lbp = export_of(capsys, db, "lbp")["register"]
    retired_org = copy.deepcopy(lbp)
    del retired_org["organisations"][3]  # dropped, not retired: the store refuses it
    err = refused(capsys, "import", "--database", db, "--lang", "da", write(tmp_path / "a.json", stand_alone()),
                  write(tmp_path / "b.json", retired_org))
    assert "b.json:" in err and "intet slettes" in err and "ingen af de 2 filer er importeret" in err
    assert list(state(db)) == ["lbp"]


def test_a_successful_import_of_several_files_reports_each(db: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dpia(capsys, "import", "--database", db, write(tmp_path / "a.json", stand_alone("a")),
                        write(tmp_path / "b.json", stand_alone("b")))
    assert code == 0 and out.count("revision 1") == 2
    assert sorted(state(db)) == ["a", "b"]


# -- duplicate ids and duplicate keys ------------------------------------------------------------------------

@pytest.mark.parametrize("selector", [
    "/organisations[lps-vendor]",
    "/activities[lps-documentation]",
    "/agreements[dpa-lps]",
    "/dpia/risks[r-data-loss]",
    "/dpia/measures[m-backup]",
    "/activities[lps-documentation]/record/data_categories[health-record]",
])
def test_an_id_given_twice_is_refused_with_its_pointer(db: str, tmp_path: Path, selector: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    doc = stand_alone()
    path = resolve(doc, selector)
    items = get(doc, path[:-1])
    items.append(copy.deepcopy(items[path[-1]]))  # the copy keeps the id; everything else may differ
    items[-1]["note"] = "a second item under the same id"
    item_id = items[-1]["id"]
    where = model.pointer((*path[:-1], len(items) - 1, "id"))
    err = refused(capsys, "import", "--database", db, write(tmp_path / "dup.json", doc))
    assert "DPIA-ID-DUPLICATE" in err and f"{where}: the id {item_id} occurs more than once" in err
    assert state(db) == {}
    # The same in an export: the pointer is into the file, under /register.
    err = refused(capsys, "import", "--database", db, "--lang", "da",
                  write(tmp_path / "export.json", {"format": model.EXPORT_FORMAT, "register": doc, "revision": {
                      "number": 1, "hash": model.register_hash(doc), "author": "DPO", "time": "2026-11-01T10:00:00Z",
                      "reason": "test"}}))
    assert f"/register{where}: id'et {item_id} forekommer mere end én gang" in err
    assert state(db) == {}


def test_a_clinic_cannot_give_a_template_item_s_id_to_another(db: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A delta that renames one organisation to another's id would make two parties one."""
    dpia(capsys, "init", "--database", db)
    delta = tmp_path / "delta.json"
    delta.write_text(json.dumps({"organisations": {"lps-vendor": {"id": "health-hub"}}}), encoding="utf-8")
    err = refused(capsys, "adopt", "--database", db, "--clinic", SOR, "--delta", str(delta))
    assert "DPIA-ID-DUPLICATE" in err and "health-hub" in err
    assert list(state(db)) == ["lbp"]


@pytest.mark.parametrize(("text", "where", "key"), [
    ('{"id": "other", "id": "lbp"', "/id", "id"),
    ('{"id": "other", "organisations": [{"id": "x", "name": "A", "name": "B", "kind": "vendor"}]',
     "/organisations/0/name", "name"),
])
def test_a_key_given_twice_is_refused(db: str, tmp_path: Path, text: str, where: str, key: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """json.loads would keep the last value and lose the first without a word."""
    rest = json.dumps({k: v for k, v in stand_alone().items() if k not in ("id", "organisations")})
    path = tmp_path / "keys.json"
    path.write_text(text + ", " + rest[1:], encoding="utf-8")
    err = refused(capsys, "import", "--database", db, str(path))
    assert "DPIA-KEY-DUPLICATE" in err and f"{where}: the key {key} is given more than once" in err
    assert state(db) == {}


# -- size and depth ------------------------------------------------------------------------------------------

def test_the_documented_default_size_limit_is_4_mib(db: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    doc = stand_alone()
    text = json.dumps(doc)
    padding = 4 * MIB - len(text.encode()) - len(', "x-padding": ""')
    at_limit = text[:-1] + ', "x-padding": "' + "a" * padding + '"}'
    assert len(at_limit.encode()) == 4 * MIB
    path = tmp_path / "big.json"
    path.write_text(at_limit, encoding="utf-8")
    assert dpia(capsys, "check", "--database", db, "--file", str(path), "--today", TODAY)[0] in (0, 1)
    path.write_text(at_limit[:-2] + 'a"}', encoding="utf-8")  # one byte over
    err = refused(capsys, "import", "--database", db, str(path))
    assert "DPIA-TOO-LARGE" in err and f"more than {4 * MIB} bytes" in err
    assert state(db) == {}


def test_the_size_limit_is_configurable_and_a_bad_setting_is_said(db: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "other.json", stand_alone())
    monkeypatch.setenv("KRONIKER_DPIA_MAX_BYTES", "1000")
    err = refused(capsys, "import", "--database", db, path, "--lang", "da")
    assert "DPIA-TOO-LARGE" in err and "mere end 1000 bytes" in err
    for bad in ("lots", "0", "-5", "²"):
        monkeypatch.setenv("KRONIKER_DPIA_MAX_BYTES", bad)
        assert "$KRONIKER_DPIA_MAX_BYTES is" in refused(capsys, "import", "--database", db, path)
    assert state(db) == {}
    monkeypatch.setenv("KRONIKER_DPIA_MAX_BYTES", str(Path(path).stat().st_size))
    assert dpia(capsys, "import", "--database", db, path)[0] == 0


def test_standard_input_is_read_only_up_to_the_limit(tmp_path: Path) -> None:
    """A stream has no size to look at first: the command stops reading one byte past the limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRONIKER_")}
    env |= {"KRONIKER_HOME": str(tmp_path / "home"), "KRONIKER_DPIA_MAX_BYTES": "100000"}
    db = f"sqlite:///{tmp_path / 'r.db'}"
    endless = b'{"id": "x", "title": "' + b"a" * 50 * MIB
    result = subprocess.run([sys.executable, "-m", "kroniker.cli", "dpia", "import", "--database", db, "-"],
                            input=endless, capture_output=True, env=env, timeout=120, check=False)
    err = result.stderr.decode("utf-8")
    assert result.returncode == 2 and "<stdin>" in err and "DPIA-TOO-LARGE" in err and "100000 bytes" in err


@pytest.mark.parametrize("levels", [100, 100_000])
def test_deep_json_is_refused_cleanly(db: str, tmp_path: Path, levels: int,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """100 levels parse but pass the documented limit of 64; 100,000 are past what Python's parser can recurse."""
    path = tmp_path / "deep.json"
    path.write_text('{"id": "x", "x-deep": ' + "[" * levels + "]" * levels + "}", encoding="utf-8")
    err = refused(capsys, "import", "--database", db, str(path))
    assert "DPIA-TOO-DEEP" in err and "deeper than 64 levels" in err
    assert state(db) == {}


def test_the_depth_limit_is_exact_and_configurable(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONIKER_DPIA_MAX_DEPTH", "12")
    doc = stand_alone()
    # The register object is level 1; eleven nested lists under "x-deep" reach level 12, twelve reach 13.
    path = tmp_path / "deep.json"
    path.write_text(json.dumps(doc | {"x-deep": json.loads("[" * 11 + "]" * 11)}), encoding="utf-8")
    assert dpia(capsys, "import", "--database", db, str(path))[0] == 0
    path.write_text(json.dumps(stand_alone("deeper") | {"x-deep": json.loads("[" * 12 + "]" * 12)}),
                    encoding="utf-8")
    err = refused(capsys, "import", "--database", db, str(path))
    assert "DPIA-TOO-DEEP" in err and "/x-deep/0/0/0/0/0/0/0/0/0/0/0:" in err and "12 levels" in err
    assert list(state(db)) == ["other"]


# -- text that cannot be stored ------------------------------------------------------------------------------

def test_invalid_utf8_is_a_finding_with_its_place(db: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(stand_alone()).encode()[:-1] + b', "x-note": "K\xf8ge"}')  # Latin-1
    err = refused(capsys, "import", "--database", db, str(path))
    offset = path.read_bytes().index(b"\xf8")
    assert "DPIA-ENCODING" in err and f"not valid UTF-8 at byte {offset} (line 1, column {offset + 1})" in err
    assert state(db) == {}


@pytest.mark.parametrize(("escaped", "where"), [
    ('"title": "Lænderyg \\ud800"', "/title"),
    ('"x-\\udfff": "a key"', "/x-\\udfff"),
    ('"title": "\\udc80 at the start"', "/title"),
])
def test_a_lone_surrogate_escape_is_refused(database_url: str, tmp_path: Path, escaped: str, where: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Valid JSON syntax, but not text: no UTF-8 database can store it (it ended in UnicodeEncodeError)."""
    doc = {k: v for k, v in stand_alone().items() if k != "title"}
    path = tmp_path / "surrogate.json"
    path.write_text("{" + escaped + ", " + json.dumps(doc)[1:], encoding="utf-8")
    err = refused(capsys, "import", "--database", database_url, str(path))
    assert "DPIA-TEXT-SURROGATE" in err and f"{where}: the text holds a lone surrogate" in err
    assert state(database_url) == {}


def test_a_nul_character_is_refused_on_both_databases(database_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc = stand_alone()
    doc["organisations"][0]["name"] = "Klinik\x00"
    err = refused(capsys, "import", "--database", database_url, write(tmp_path / "nul.json", doc))
    assert "DPIA-TEXT-NUL" in err and "/organisations/0/name: the text holds a NUL character" in err
    assert state(database_url) == {}


def test_an_impossible_time_in_an_export_is_a_finding(db: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc = stand_alone()
    export = {"format": model.EXPORT_FORMAT, "register": doc,
              "revision": {"number": 1, "hash": model.register_hash(doc), "author": "DPO",
                           "time": "2026-02-30T25:00:00Z", "reason": "r"}}
    err = refused(capsys, "import", "--database", db, write(tmp_path / "time.json", export))
    assert "DPIA-TIME-INVALID" in err and "/revision/time: 2026-02-30T25:00:00Z is not a real date and time" in err
    assert state(db) == {}


def test_over_long_names_in_an_export_are_refused_not_cut_by_postgresql(database_url: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The store keeps authors and signers in 200 characters: the file is refused before the database is asked."""
    doc = stand_alone()
    export = {"format": model.EXPORT_FORMAT, "register": doc,
              "revision": {"number": 1, "hash": model.register_hash(doc), "author": "A" * 201,
                           "time": "2026-11-01T10:00:00Z", "reason": "r"}}
    err = refused(capsys, "import", "--database", database_url, write(tmp_path / "long.json", export))
    assert "DPIA-SCHEMA" in err and "/revision/author:" in err and "the database cannot be used" not in err
    assert state(database_url) == {}
    export["revision"]["author"] = "A" * 200
    assert dpia(capsys, "import", "--database", database_url, write(tmp_path / "ok.json", export))[0] == 0


# -- the other sub-commands: their options are input too -----------------------------------------------------

SURROGATE = "\udcff"  # what Python makes of the byte 0xff in a command-line argument


@pytest.mark.parametrize(("args", "option"), [
    (["adopt", "--clinic", SOR, "--party", f"lps-vendor=Lægesystemer{SURROGATE} A/S"], "--party"),
    (["adopt", "--clinic", SOR, "--name", f"Klinik{SURROGATE}"], "--name"),
    (["adopt", "--clinic", SOR, "--author", f"Dr{SURROGATE}"], "--author"),
    (["sign-off", "lbp", "--role", "dpo", "--name", f"DPO {SURROGATE}", "--decision", "approve"], "--name"),
    (["sign-off", "lbp", "--role", "dpo", "--name", "DPO", "--decision", "reject", "--statement", SURROGATE],
     "--statement"),
    (["retire", "lbp", "--reason", f"lukket{SURROGATE}"], "--reason"),
    (["export", f"lbp{SURROGATE}"], "REGISTER"),
    (["diff", "lbp", f"abcd{SURROGATE}"], "REF"),  # a hash prefix: it reached the database
    (["history", "--clinic", SURROGATE], "--clinic"),
])
def test_a_lone_surrogate_in_an_option_is_refused(database_url: str, args: list[str], option: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", database_url)
    before = state(database_url)
    err = refused(capsys, *args, "--database", database_url)
    assert f"{option}: the value holds \\udcff, which is not a character" in err
    assert state(database_url) == before


@pytest.mark.parametrize(("args", "option", "limit"), [
    (["sign-off", "lbp", "--role", "dpo", "--decision", "reject", "--name", "N" * 201], "--name", 200),
    (["adopt", "--clinic", SOR, "--author", "A" * 201], "--author", 200),
    (["retire", "lbp", "--reason", "R" * 2001], "--reason", 2000),
    (["adopt", "--clinic", SOR, "--party", "lps-vendor=" + "L" * 1000], "--party", 1000),
])
def test_an_over_long_option_is_refused_before_the_database_is_asked(database_url: str, args: list[str], option: str,
                                                                     limit: int,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """On PostgreSQL a 201-character signer ended in a DataError from varchar(200); on SQLite it was stored."""
    dpia(capsys, "init", "--database", database_url)
    before = state(database_url)
    err = refused(capsys, *args, "--database", database_url)
    assert f"{option}: the value is" in err and f"at most {limit} are allowed" in err
    assert state(database_url) == before


def test_the_limits_hold_exactly(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    code, _, err = dpia(capsys, "sign-off", "lbp", "--database", db, "--role", "dpo", "--decision", "reject",
                        "--name", "N" * 200, "--statement", "S" * 20000, "--today", TODAY)
    assert code == 0, err
    assert state(db)["lbp"][3] == [("N" * 200, model.register_hash(template()))]


def test_bytes_that_are_not_utf8_on_a_real_command_line(tmp_path: Path) -> None:
    """The operating system hands over bytes; the name 0xff and an author from the environment both reach the
    check, and a file whose name is not UTF-8 is still read (a path is the file system's business)."""
    env: dict[bytes, bytes] = {k: v for k, v in os.environb.items() if not k.startswith(b"KRONIKER_")}
    env[b"KRONIKER_HOME"] = os.fsencode(tmp_path / "home")
    db = f"sqlite:///{tmp_path / 'r.db'}".encode()
    kroniker: list[bytes | str] = [sys.executable, "-m", "kroniker.cli", "dpia"]

    def run(*args: bytes | str, extra: dict[bytes, bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*kroniker, *args], capture_output=True, env=env | (extra or {}), timeout=120,
                              check=False)

    assert run("init", "--database", db).returncode == 0
    signed = run("sign-off", "lbp", "--database", db, "--role", "dpo", "--decision", "approve", "--name", b"DPO \xff")
    assert signed.returncode == 2 and b"--name: the value holds \\udcff" in signed.stderr
    odd = tmp_path.joinpath(os.fsdecode(b"register-\xff.json"))
    odd.write_text(json.dumps(stand_alone()), encoding="utf-8")
    author = run("import", "--database", db, os.fsencode(odd), extra={b"KRONIKER_AUTHOR": b"Hansen \xfe"})
    assert author.returncode == 2 and b"$KRONIKER_AUTHOR: the value holds \\udcfe" in author.stderr
    taken = run("import", "--database", db, os.fsencode(odd), "--author", "Hansen")
    assert taken.returncode == 0, taken.stderr
    history = run("history", "other", "--database", db)
    assert b"register-\\xff.json" in history.stdout  # the reason names the file, its odd byte escaped
    for result in (signed, author, taken, history):
        assert b"Traceback" not in result.stderr and b"Error:" not in result.stderr


def test_a_delta_file_is_read_as_strictly_as_an_import(db: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    delta = tmp_path / "delta.json"
    delta.write_text('{"title": "Klinik", "title": "Klinik \\ud800"}', encoding="utf-8")
    err = refused(capsys, "adopt", "--database", db, "--clinic", SOR, "--delta", str(delta))
    assert "DPIA-KEY-DUPLICATE" in err and "DPIA-TEXT-SURROGATE" in err
    delta.write_text("[" * 50_000 + "]" * 50_000, encoding="utf-8")
    assert "DPIA-TOO-DEEP" in refused(capsys, "adopt", "--database", db, "--clinic", SOR, "--delta", str(delta))
    assert list(state(db)) == ["lbp"]


def test_init_and_check_read_files_as_strictly_as_an_import(db: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"id": "lbp", ' + json.dumps(template())[1:].replace('"id": "lbp", ', "", 1)
                    .replace('"title": "', '"title": "\\ud800', 1), encoding="utf-8")
    assert "DPIA-TEXT-SURROGATE" in refused(capsys, "init", "--database", db, "--template", str(path))
    assert "DPIA-TEXT-SURROGATE" in refused(capsys, "check", "--database", db, "--file", str(path))
    assert state(db) == {}


# -- what a DPO would call a silent drop ---------------------------------------------------------------------

def test_sign_offs_a_file_cannot_vouch_for_are_said_not_taken_over(db: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An edited export still carries the sign-off of the revision it was exported at: it does not cover the edit,
    so it is not taken over, and the command says so instead of dropping it in silence."""
    dpia(capsys, "init", "--database", db)
    dpia(capsys, "sign-off", "lbp", "--database", db, "--role", "dpo", "--name", "DPO Hansen", "--decision", "approve",
         "--today", TODAY)
    exported = export_of(capsys, db, "lbp")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    exported["sign_offs"] = exported["sign_offs"] * 2  # the same sign-off twice: stored once
    code, out, _ = dpia(capsys, "import", "--database", other, write(tmp_path / "same.json", exported))
    assert code == 0 and "1 sign-off(s) taken over" in out and "not taken over" not in out
    assert len(state(other)["lbp"][3]) == 1
    edited = copy.deepcopy(exported)
    edited["register"]["title"] += " (redigeret)"
    third = f"sqlite:///{tmp_path / 'third.db'}"
    code, out, _ = dpia(capsys, "import", "--database", third, write(tmp_path / "edited.json", edited))
    assert code == 0 and "0 sign-off(s) taken over" in out
    assert "2 sign-off(s) in the file not taken over" in out
    assert state(third)["lbp"][3] == []


def test_a_clinic_cannot_delete_a_template_item(db: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing is deleted, only retired: a clinic that drops one of the common risks would take it out of its
    assessment without a trace in any revision. Through adopt --delta (a null, which was lost on the way before)
    and through an edited export imported elsewhere (which was stored without the risk)."""
    dpia(capsys, "init", "--database", db)
    delta = tmp_path / "delta.json"
    delta.write_text(json.dumps({"dpia": {"risks": {"r-data-loss": None}}}), encoding="utf-8")
    err = refused(capsys, "adopt", "--database", db, "--clinic", SOR, "--delta", str(delta))
    assert "nothing is deleted from a register" in err and "dpia/risks[r-data-loss]" in err
    assert list(state(db)) == ["lbp"]
    delta.write_text(json.dumps({"dpia": {"risks": {"r-data-loss": {"status": "retired"}}}}), encoding="utf-8")
    assert dpia(capsys, "adopt", "--database", db, "--clinic", SOR, "--delta", str(delta))[0] == 0

    other = f"sqlite:///{tmp_path / 'other.db'}"
    template_file = write(tmp_path / "lbp.json", export_of(capsys, db, "lbp"))
    clinic = export_of(capsys, db, f"clinic-{SOR}")
    risks = clinic["register"]["dpia"]["risks"]
    risks.remove(next(r for r in risks if r["id"] == "r-data-loss"))
    err = refused(capsys, "import", "--database", other, template_file, write(tmp_path / "clinic.json", clinic))
    assert "clinic.json:" in err and "dpia/risks[r-data-loss]" in err
    assert state(other) == {}
