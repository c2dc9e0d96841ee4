"""`kroniker dpia …` as a DPO runs it: in-process through `kroniker.cli.main`, and once as a real process.
Exit status as for `kroniker validate`: 0 no errors, 1 errors, 2 usage errors and unreadable input."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
TODAY = "2026-12-01"
ADOPT = ["--name", "Lægerne i Kronikergården", "--email", "kontakt@kronikergaarden.example",
         "--party", "lps-vendor=Lægesystemer A/S <dpo@lps.example>", "--agreements-signed", "2026-11-01"]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KRONIKER_DATABASE", "KRONIKER_LANG", "KRONIKER_DEBUG", "KRONIKER_AUTHOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KRONIKER_HOME", str(tmp_path / "home"))
    return f"sqlite:///{tmp_path / 'register.db'}"


def dpia(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dpia", *args])
    out, err = capsys.readouterr()
    return code, out, err


def registers(url: str) -> list[str]:
    store = Store.open(url)
    try:
        return [i.id for i in store.registers(include_retired=True)]
    finally:
        store.close()


def test_check_says_so_when_there_is_nothing_to_check(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dpia(capsys, "check", "--database", db)
    assert code == 0 and "0 register(s) checked" in out


def test_init_stores_the_shipped_template_once(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = dpia(capsys, "init", "--database", db)
    assert code == 0 and model.register_hash(template()) in out and "revision 1" in out
    code, out, _ = dpia(capsys, "init", "--database", db, "--lang", "da")
    assert code == 0 and "findes allerede" in out
    assert registers(db) == ["lbp"]


def test_the_default_database_is_in_kroniker_home(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dpia(capsys, "init")[0] == 0
    assert (tmp_path / "home" / "kroniker.db").is_file()


def test_adopt_check_sign_off_diff_history(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    code, out, _ = dpia(capsys, "adopt", "--database", db, "--clinic", SOR, *ADOPT, "--author", "Dr. Jensen")
    assert code == 0 and f"clinic-{SOR}" in out
    code, out, _ = dpia(capsys, "check", "--database", db, "--today", TODAY, "--clinic", SOR)
    assert code == 0 and "0 error(s)" in out
    code, out, _ = dpia(capsys, "sign-off", "--database", db, "--clinic", SOR, "--role", "controller",
                        "--name", "Dr. Jensen", "--decision", "approve", "--revision", "1", "--today", TODAY)
    assert code == 0 and "revision 1" in out
    hash_1 = Store.open(db).effective(f"clinic-{SOR}").hash
    assert hash_1 in out

    # The DPO adds a processor to the template without an agreement: every clinic sees it, and its sign-off lapses.
    exported = json.loads(_export(capsys, db, "lbp"))
    doc = exported["register"]
    doc["organisations"].append({"id": "it-support", "name": "Klinik-IT ApS", "kind": "vendor",
                                 "contact": {"email": "it@klinik-it.example"}})
    lps = get(doc, resolve(doc, "/activities[lps-documentation]"))
    lps["roles"].append({"organisation": "it-support", "role": "processor"})
    lps["processor_records"].append({"processor": "it-support", "controllers": ["clinic"], "categories": ["Support"],
                                     "transfers": [], "security": {"description": "VPN"}})
    path = Path(db.removeprefix("sqlite:///")).with_name("lbp.json")
    path.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    code, out, _ = dpia(capsys, "import", "--database", db, str(path), "--author", "DPO Hansen",
                        "--reason", "Klinik-IT yder support")
    assert code == 0 and "revision 2" in out

    code, out, _ = dpia(capsys, "check", "--database", db, "--today", TODAY, "--clinic", SOR, "--lang", "da")
    assert code == 1
    assert "DPIA-28-3-AGREEMENT-MISSING" in out and "Klinik-IT ApS" in out and "art. 28, stk. 3" in out.lower()
    assert "DPIA-SIGNOFF-STALE" in out and "DPIA-TEMPLATE-CHANGED" in out

    code, out, _ = dpia(capsys, "diff", "--database", db, "--clinic", SOR)
    assert code == 0 and "revision 1" in out and "+ /organisations/9" in out and "organisations[it-support]" in out
    code, out, _ = dpia(capsys, "diff", "--database", db, "--clinic", SOR, "1", "2", "--format", "json")
    changes = json.loads(out)["changes"]
    assert {"op": "add", "path": "/organisations/9", "where": "organisations[it-support]",
            "new": doc["organisations"][-1]} in changes
    assert json.loads(out)["from"]["hash"] == hash_1

    code, out, _ = dpia(capsys, "history", "--database", db, "--clinic", SOR)
    lines = out.splitlines()
    assert code == 0 and lines[1].startswith("r1") and "Dr. Jensen (controller)" in lines[2]
    assert lines[3].startswith("r2") and "Klinik-IT yder support" in lines[3] and "[lbp r2]" in lines[3]
    history = json.loads(dpia(capsys, "history", "--database", db, "--clinic", SOR, "--format", "json")[1])
    assert [r["template_revision"] for r in history["revisions"]] == [1, 2]
    assert history["sign_offs"][0]["hash"] == hash_1


def _export(capsys: pytest.CaptureFixture[str], db: str, register: str, *args: str) -> str:
    code, out, err = dpia(capsys, "export", "--database", db, register, *args)
    assert code == 0, err
    return out


def test_check_reports_json_with_articles_and_exit_status(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    dpia(capsys, "adopt", "--database", db, "--clinic", SOR, "--name", "Klinik uden aftaler")
    code, out, _ = dpia(capsys, "check", "--database", db, "--today", TODAY, "--format", "json")
    result = {r["id"]: r for r in json.loads(out)["registers"]}
    assert code == 1 and result["lbp"]["errors"] == 0
    clinic = result[f"clinic-{SOR}"]
    assert clinic["errors"] > 0 and clinic["hash"].startswith("sha256:") and clinic["revision"] == 1
    writing = [f for f in clinic["findings"] if f["code"] == "DPIA-28-9-WRITING"]
    assert writing and writing[0]["article"] == "GDPR Art. 28(9)" and writing[0]["severity"] == "error"
    assert writing[0]["location"].startswith("/agreements/") and "Art. 28(9)" in writing[0]["message"]
    code, out, _ = dpia(capsys, "check", "--database", db, "--today", TODAY, "lbp")
    assert code == 0


def test_check_a_file_kept_in_git_without_storing_it(db: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    doc = template()
    del doc["activities"][0]["record"]["purposes"]
    path = tmp_path / "lbp.json"
    path.write_text(model.pretty(doc), encoding="utf-8")
    code, out, _ = dpia(capsys, "check", "--database", db, "--file", str(path), "--today", TODAY)
    assert code == 1 and "DPIA-30-1-B-PURPOSES" in out and "/activities/0/record/purposes" in out
    assert registers(db) == []


def test_export_import_export_through_the_command_is_identical(db: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    dpia(capsys, "init", "--database", db)
    dpia(capsys, "sign-off", "--database", db, "lbp", "--role", "dpo", "--name", "DPO Hansen", "--decision", "approve")
    dpia(capsys, "adopt", "--database", db, "--clinic", SOR, *ADOPT)
    for register in ("lbp", f"clinic-{SOR}"):
        first = tmp_path / f"{register}.json"
        assert dpia(capsys, "export", "--database", db, register, "-o", str(first))[0] == 0
        assert dpia(capsys, "import", "--database", other, str(first))[0] == 0
        assert _export(capsys, other, register).encode("utf-8") == first.read_bytes()


def test_import_says_when_a_clinics_revision_was_made_by_its_templates_change(
        db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's import: the template's edited export and a clinic's unchanged one. The clinic's own values are
    unchanged, but the template's change gave it a new revision in this import: saying "unchanged" would hide it."""
    dpia(capsys, "init", "--database", db)
    dpia(capsys, "adopt", "--database", db, "--clinic", SOR, *ADOPT)
    tpl, clinic = tmp_path / "lbp.json", tmp_path / "clinic.json"
    dpia(capsys, "export", "--database", db, "lbp", "-o", str(tpl))
    dpia(capsys, "export", "--database", db, f"clinic-{SOR}", "-o", str(clinic))
    exported = json.loads(tpl.read_text(encoding="utf-8"))
    exported["register"]["activities"][0]["description"] += " Ændret."
    tpl.write_text(json.dumps(exported, ensure_ascii=False), encoding="utf-8")
    code, out, _ = dpia(capsys, "import", "--database", db, str(tpl), str(clinic), "--reason", "Ny underdatabehandler")
    assert code == 0
    template_line, clinic_line = out.splitlines()
    assert template_line.startswith("lbp: revision 2 ")
    assert clinic_line.startswith(f"clinic-{SOR}: its own values unchanged; revision 2 ")
    assert "made by this import" in clinic_line
    # Imported again, nothing changes, and that is what it says.
    code, out, _ = dpia(capsys, "import", "--database", db, str(tpl), str(clinic), "--lang", "da")
    assert code == 0 and [line.split(" (")[0] for line in out.splitlines()] == [
        "lbp: uændret i revision 2", f"clinic-{SOR}: uændret i revision 2"]


@pytest.mark.parametrize(("content", "says"), [
    (b'{"schema_version": 1, "id": "lbp", ', "DPIA-JSON-SYNTAX       /: not valid JSON at line 1, "
                                             "column 36: expecting a property name"),  # just after the 35 characters
    (json.dumps({**template(), "dpia": {**template()["dpia"], "review": {"next": "snart"}}}).encode(),
     "/dpia/review/next"),
    (json.dumps({**template(), "kind": "practice"}).encode(),
     "/kind: the register does not have the schema's shape: 'practice' is not one of"),
])
def test_bad_input_is_a_readable_message_exit_2_and_nothing_written(db: str, tmp_path: Path, content: bytes,
                                                                    says: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(model.pretty(template() | {"id": "other", "kind": "register"}), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, _, err = dpia(capsys, "import", "--database", db, str(good), str(bad))
    assert code == 2 and says in err and "bad.json" in err and "Traceback" not in err
    assert registers(db) == [], "the good file before the bad one was not written either"


def test_usage_errors_and_refusals(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dpia(capsys, "export", "--database", db, "nowhere")
    assert code == 2 and "there is no register nowhere" in err
    dpia(capsys, "init", "--database", db)
    code, _, err = dpia(capsys, "adopt", "--database", db, "--clinic", "12x")
    assert code == 2 and "not a SOR code" in err
    code, _, err = dpia(capsys, "adopt", "--database", db, "--clinic", SOR, "--party", "hub=Someone")
    assert code == 2 and "lps-vendor" in err
    dpia(capsys, "adopt", "--database", db, "--clinic", SOR, "--name", "Klinik")
    code, _, err = dpia(capsys, "sign-off", "--database", db, "--clinic", SOR, "--role", "controller", "--name", "Dr",
                        "--decision", "approve", "--today", TODAY, "--lang", "da")
    assert code == 1 and "intet er godkendt" in err and "DPIA-28-9-WRITING" in err
    code, _, err = dpia(capsys, "diff", "--database", db, "lbp", "1", "2", "3")
    assert code == 2
    assert main(["dpia"]) == 2
    code, _, err = dpia(capsys, "export", "--database", "postgresql://nobody@127.0.0.1:1/none", "lbp")
    assert code == 2 and "database" in err and "Traceback" not in err


def test_retire_keeps_the_register(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    dpia(capsys, "init", "--database", db)
    dpia(capsys, "adopt", "--database", db, "--clinic", SOR, *ADOPT)
    code, _, err = dpia(capsys, "retire", "--database", db, "lbp", "--reason", "erstattes")
    assert code == 2 and "retire the clinics' registers first" in err, "a template clinics adopt stays"
    assert dpia(capsys, "retire", "--database", db, "--clinic", SOR, "--reason", "klinikken lukker")[0] == 0
    listed = dpia(capsys, "list", "--database", db)[1]
    assert f"clinic-{SOR}" not in listed and "lbp" in listed
    assert f"clinic-{SOR}" in dpia(capsys, "list", "--database", db, "--all")[1]
    assert "klinikken lukker" in dpia(capsys, "history", "--database", db, "--clinic", SOR)[1]


def test_the_command_on_postgresql(database_url: str, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KRONIKER_DATABASE", raising=False)
    assert dpia(capsys, "init", "--database", database_url)[0] == 0
    assert dpia(capsys, "adopt", "--database", database_url, "--clinic", SOR, *ADOPT)[0] == 0
    code, out, _ = dpia(capsys, "check", "--database", database_url, "--today", TODAY, "--summary")
    assert code == 0 and "2 register(s) checked: 2 without errors" in out


def test_as_a_real_process(db: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRONIKER_")}
    env["KRONIKER_HOME"] = str(tmp_path / "home")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kroniker", "dpia", *args, "--database", db, "--lang", "da"],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)

    assert run("init").returncode == 0
    assert run("adopt", "--clinic", SOR, "--name", "Klinik uden aftaler").returncode == 0
    proc = run("check", "--today", TODAY)
    assert proc.returncode == 1, proc.stderr
    assert "DPIA-28-9-WRITING" in proc.stdout and "FEJL" in proc.stdout and "Traceback" not in proc.stderr
    proc = run("check", "--today", TODAY, "lbp")
    assert proc.returncode == 0 and "0 fejl" in proc.stdout


def findings_of(out: str) -> list[dict[str, Any]]:
    return [f for r in json.loads(out)["registers"] for f in r["findings"]]
