"""Step code for features/dpo: the DPO keeps the register for the low back pain package and its clinics.

Thin steps over the same public API a DPO's tools use: the store, the checks, the export, the diff."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from kroniker.dpia import exchange, model
from kroniker.dpia.diff import diff
from kroniker.dpia.model import RegisterError
from kroniker.dpia.store import Store, StoreError
from kroniker.validators import Severity
from kroniker.validators.findings import Finding
from tests.dpia_support import clinic_changes, get, resolve, template

MONTHS = {name: i for i, name in enumerate(
    ["januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
     "november", "december"], start=1)}
# Words that give away an English sentence in a message meant to be Danish. None of them is a Danish word.
ENGLISH = re.compile(r"\b(the|of|without|agreement|processor|must|should|missing|found)\b", re.IGNORECASE)
THREE_CLINICS = [("100000000001", "Lægehuset Nord"), ("100000000002", "Lægerne ved Åen"),
                 ("100000000003", "Klinikken på Torvet")]


@dataclass
class Register:
    """The DPO's database, the clinics in the story, and what the last check, sign-off or refusal said."""

    store: Store
    clinics: dict[str, str] = field(default_factory=dict)  # name → register id
    found: dict[str, list[Finding]] = field(default_factory=dict)
    finding: Finding | None = None
    signed: Any = None
    read_revision: int | None = None
    refused: StoreError | None = None
    files: list[tuple[str, bytes]] = field(default_factory=list)  # name, content: what the DPO imports
    import_refused: Exception | None = None


@pytest.fixture
def register(tmp_path: Path) -> Iterator[Register]:
    store = Store.open(f"sqlite:///{tmp_path / 'fortegnelse.db'}")
    yield Register(store)
    store.close()


scenarios("dpo")


def _day(day: int, month: str, year: int) -> date:
    return date(year, MONTHS[month], day)


def _only(register: Register) -> str:
    assert len(register.clinics) == 1, register.clinics
    return next(iter(register.clinics.values()))


def _edit(register: Register, clinic: str, change: Any, reason: str) -> None:
    """Change a clinic's register as it reads, and store it as the clinic's new revision."""
    document = register.store.effective(clinic).document
    change(document)
    register.store.save_clinic(document, author="Lægerne", reason=reason)


def _errors(findings: list[Finding]) -> list[str]:
    return [f"{f.code} {f.location}" for f in findings if f.severity >= Severity.ERROR]


# -- Givet -------------------------------------------------------------------------------------------------

@given("at skabelonen for lænderygpakken er lagt ind i fortegnelsen")
def template_stored(register: Register) -> None:
    register.store.save(template(), author="DPO", reason="skabelonen for lænderygpakken")


@given(parsers.parse("at {name} med SOR-nummer {sor:d} har tilsluttet sig skabelonen"))
def clinic_adopts(register: Register, name: str, sor: int) -> None:
    rev = register.store.adopt("lbp", str(sor), clinic_changes(name, str(sor), signed=None), author=name,
                               reason="tilslutning")
    register.clinics[name] = rev.register_id


@given(parsers.parse("at klinikken har underskrevet skabelonens standardaftaler den {day:d}. {month} {year:d}"))
def standard_agreements_signed(register: Register, day: int, month: str, year: int) -> None:
    signed = _day(day, month, year).isoformat()

    def sign(doc: dict[str, Any]) -> None:
        for agreement in doc["agreements"]:
            if agreement.get("status") == "standard-terms":
                agreement.update(status="signed", signed=signed)

    _edit(register, _only(register), sign, "standardaftalerne er underskrevet")


@given(parsers.parse('at {name} lader "{vendor}" yde fjernsupport på lægesystemet'))
def remote_support(register: Register, name: str, vendor: str) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["organisations"].append({"id": "it-support", "name": vendor, "kind": "vendor",
                                     "contact": {"email": "support@klinik-it.example"}})
        lps = get(doc, resolve(doc, "/activities[lps-documentation]"))
        lps["roles"].append({"organisation": "it-support", "role": "processor", "acts_for": "clinic",
                             "stage": "Fjernsupport på lægesystemet"})
        lps["processor_records"].append({"processor": "it-support", "controllers": ["clinic"],
                                         "categories": ["Fjernsupport på klinikkens computere og lægesystem"],
                                         "transfers": [], "security": {"description": "Personligt login og VPN"}})

    _edit(register, register.clinics[name], add, f"{vendor} yder fjernsupport")


@given(parsers.parse('at klinikken ikke har indgået en databehandleraftale med "{vendor}"'))
def no_agreement(register: Register, vendor: str) -> None:
    doc = register.store.effective(_only(register)).document
    ids = {o["id"] for o in doc["organisations"] if o["name"] == vendor}
    assert ids and not [a for a in doc["agreements"] if a.get("processor") in ids]


@given(parsers.parse('at klinikken har underskrevet en databehandleraftale med "{vendor}" den {day:d}. {month} '
                     '{year:d}'))
def agreement_signed(register: Register, vendor: str, day: int, month: str, year: int) -> None:
    def add(doc: dict[str, Any]) -> None:
        org = next(o["id"] for o in doc["organisations"] if o["name"] == vendor)
        agreement = copy.deepcopy(get(doc, resolve(doc, "/agreements[dpa-lps]")))
        agreement.update(id="dpa-it-support", processor=org, activities=["lps-documentation"],
                         signed=_day(day, month, year).isoformat())
        doc["agreements"].append(agreement)

    _edit(register, _only(register), add, f"databehandleraftale med {vendor}")


@given(parsers.parse('at lægesystemets leverandør lægger backup hos "{sub}" uden at spørge klinikken'))
def unapproved_backup(register: Register, sub: str) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["organisations"].append({"id": "backup", "name": sub, "kind": "vendor",
                                     "contact": {"email": "drift@backup.example"}})
        lps = get(doc, resolve(doc, "/activities[lps-documentation]"))
        lps["roles"].append({"organisation": "backup", "role": "sub-processor", "acts_for": "lps-vendor"})
        lps["processor_records"].append({"processor": "backup", "controllers": ["clinic"], "categories": ["Backup"],
                                         "transfers": [], "security": {"description": "Krypteret backup"}})
        # The vendor has its own contract with the sub-processor; what is missing is the clinic's approval.
        sub_agreement = copy.deepcopy(get(doc, resolve(doc, "/agreements[sub-hub-hosting]")))
        sub_agreement.update(id="sub-lps-backup", processor="lps-vendor", sub_processor="backup",
                             activities=["lps-documentation"])
        doc["agreements"].append(sub_agreement)

    _edit(register, _only(register), add, "leverandøren oplyser om backup")


@given("at tre klinikker har tilsluttet sig skabelonen, underskrevet standardaftalerne og godkendt deres "
       "konsekvensanalyse")
def three_signed_clinics(register: Register) -> None:
    for sor, name in THREE_CLINICS:
        rev = register.store.adopt("lbp", sor, clinic_changes(name, sor), author=name, reason="tilslutning")
        register.store.sign_off(rev.register_id, role="controller", name=f"Lægen i {name}", decision="approve",
                                today=date(2026, 12, 1))
        register.clinics[name] = rev.register_id


@given("at lægen har godkendt klinikkens konsekvensanalyse")
@when("lægen godkender klinikkens konsekvensanalyse")
def doctor_signs(register: Register) -> None:
    register.signed = register.store.sign_off(_only(register), role="controller", name="Dr. Jensen",
                                              decision="approve", today=date(2026, 12, 1))


@given(parsers.parse("at lægen har læst revision {number:d} af klinikkens konsekvensanalyse"))
def doctor_reads(register: Register, number: int) -> None:
    assert register.store.effective(_only(register), number).revision.number == number
    register.read_revision = number


@given(parsers.parse('at klinikken i mellemtiden tilføjer modtageren "{recipient}" til delingen af journalnotater'))
@when(parsers.parse('klinikken tilføjer modtageren "{recipient}" til delingen af journalnotater'))
def add_recipient(register: Register, recipient: str) -> None:
    def add(doc: dict[str, Any]) -> None:
        get(doc, resolve(doc, "/activities[journal-note-sharing]/record"))["recipients"].append(recipient)

    _edit(register, _only(register), add, f"ny modtager: {recipient}")


# -- Når ---------------------------------------------------------------------------------------------------

@when(parsers.parse("jeg kontrollerer fortegnelserne den {day:d}. {month} {year:d}"))
def check_all(register: Register, day: int, month: str, year: int) -> None:
    register.found = {eff.info.id: found for eff, found in register.store.check_many(None, _day(day, month, year))}


@when(parsers.parse('jeg i skabelonen skifter Health Hubs driftscenter til "{name}" med begrundelsen "{reason}"'))
def new_hub_hosting(register: Register, name: str, reason: str) -> None:
    doc = register.store.effective("lbp").document
    # Nothing is deleted: the old data centre, its contract and its approval are retired, the new ones added.
    get(doc, resolve(doc, "/organisations[hub-hosting]"))["status"] = "retired"
    get(doc, resolve(doc, "/agreements[sub-hub-hosting]"))["status"] = "terminated"
    get(doc, resolve(doc, "/sub_processor_approvals[approval-hub-hosting]"))["status"] = "retired"
    doc["organisations"].append({"id": "cloud", "name": name, "kind": "vendor",
                                 "contact": {"email": "drift@sky.example"}})
    for activity in doc["activities"]:
        for item in activity["roles"] + activity["processor_records"]:
            for key in ("organisation", "processor"):
                if item.get(key) == "hub-hosting":
                    item[key] = "cloud"
    agreement = copy.deepcopy(get(doc, resolve(doc, "/agreements[sub-hub-hosting]")))
    agreement.update(id="sub-hub-cloud", sub_processor="cloud", status="signed", signed="2026-11-15")
    approval = copy.deepcopy(get(doc, resolve(doc, "/sub_processor_approvals[approval-hub-hosting]")))
    approval.update(id="approval-hub-cloud", sub_processor="cloud", status="active")
    doc["agreements"].append(agreement)
    doc["sub_processor_approvals"].append(approval)
    register.store.save(doc, author="DPO", reason=reason)


@when("den første klinik godkender sin konsekvensanalyse igen")
def first_signs_again(register: Register) -> None:
    name = THREE_CLINICS[0][1]
    register.store.sign_off(register.clinics[name], role="controller", name=f"Lægen i {name}", decision="approve",
                            today=date(2026, 12, 1))


@when("lægen godkender den revision, hun læste")
def doctor_signs_what_she_read(register: Register) -> None:
    try:
        register.signed = register.store.sign_off(_only(register), role="controller", name="Dr. Jensen",
                                                  decision="approve", expected=register.read_revision,
                                                  today=date(2026, 12, 1))
    except StoreError as exc:
        register.refused = exc


# -- Så ----------------------------------------------------------------------------------------------------

@then("er der ingen fejl i skabelonen")
def template_without_errors(register: Register) -> None:
    assert _errors(register.found["lbp"]) == []


@then(parsers.parse("ingen fejl hos {name}"))
@then(parsers.parse("er der ingen fejl hos {name}"))
def clinic_without_errors(register: Register, name: str) -> None:
    assert _errors(register.found[register.clinics[name]]) == []


@then(parsers.parse('har {name} fejlen "{code}"'))
def clinic_has_error(register: Register, name: str, code: str) -> None:
    found = [f for f in register.found[register.clinics[name]] if f.code == code]
    assert found, [f.code for f in register.found[register.clinics[name]]]
    assert found[0].severity == Severity.ERROR
    register.finding = found[0]


@then(parsers.parse('beskeden er på dansk og nævner "{first}" og "{second}"'))
def message_in_danish(register: Register, first: str, second: str) -> None:
    assert register.finding is not None
    text = register.finding.message("da")
    assert first.lower() in text.lower() and second.lower() in text.lower(), text
    words = re.sub(r'"[^"]*"', "", text)  # names are quoted; they may be in any language
    assert not ENGLISH.search(words), text


@then("skabelonen har ikke fejlen")
def template_has_not(register: Register) -> None:
    assert register.finding is not None
    assert register.finding.code not in {f.code for f in register.found["lbp"]}


@then(parsers.parse('har hver klinik fået en ny revision med begrundelsen "{reason}"'))
def every_clinic_new_revision(register: Register, reason: str) -> None:
    template_head = register.store.revision("lbp")
    for clinic in register.clinics.values():
        history = register.store.revisions(clinic)
        assert len(history) == 2 and reason in history[-1].reason
        assert history[-1].template_number == template_head.number


@then(parsers.parse('hver klinik ser "{name}" i sin fortegnelse'))
def every_clinic_sees(register: Register, name: str) -> None:
    for clinic in register.clinics.values():
        doc = register.store.effective(clinic).document
        assert name in [o["name"] for o in doc["organisations"] if o.get("status") != "retired"]


@then("hver klinik får at vide, at dens godkendelse ikke længere dækker fortegnelsen")
def every_sign_off_stale(register: Register) -> None:
    for clinic in register.clinics.values():
        _, found = register.store.check(clinic, date(2026, 12, 1))
        assert "DPIA-SIGNOFF-STALE" in {f.code for f in found}
        assert not [e for e in _errors(found) if not e.startswith("DPIA-SIGNOFF-STALE")], _errors(found)


@then("hver klinik får at vide, at skabelonen er ændret siden godkendelsen")
def every_clinic_told_template_changed(register: Register) -> None:
    for clinic in register.clinics.values():
        _, found = register.store.check(clinic, date(2026, 12, 1))
        changed = [f for f in found if f.code == "DPIA-TEMPLATE-CHANGED"]
        assert changed and "skabelonen er ændret" in changed[0].message("da")


@then(parsers.parse('forskellen siden hver kliniks godkendelse viser "{name}"'))
def diff_since_sign_off(register: Register, name: str) -> None:
    for clinic in register.clinics.values():
        signed = register.store.sign_offs(clinic)[-1]
        changes = diff(register.store.effective(clinic, signed.revision_number).document,
                       register.store.effective(clinic).document)
        assert any(c.op == "add" and name in json.dumps(c.new, ensure_ascii=False) for c in changes)


@then("står hver kliniks eget navn stadig i dens fortegnelse")
def own_name_kept(register: Register) -> None:
    for name, clinic in register.clinics.items():
        doc = register.store.effective(clinic).document
        assert get(doc, resolve(doc, "/organisations[clinic]"))["name"] == name


@then("hver klinik gemmer stadig kun sine egne ændringer")
def only_own_deltas(register: Register) -> None:
    for clinic in register.clinics.values():
        first, last = register.store.revisions(clinic)[0], register.store.revisions(clinic)[-1]
        assert last.content == first.content
        assert set(last.content) <= {"id", "kind", "title", "organisations", "agreements"}


@then(parsers.parse('er fejlen "{code}" væk hos den første klinik'))
def first_clinic_clear(register: Register, code: str) -> None:
    _, found = register.store.check(register.clinics[THREE_CLINICS[0][1]], date(2026, 12, 1))
    assert code not in {f.code for f in found}


@then("de to andre klinikker har den stadig")
def others_still_stale(register: Register) -> None:
    for _, name in THREE_CLINICS[1:]:
        _, found = register.store.check(register.clinics[name], date(2026, 12, 1))
        assert "DPIA-SIGNOFF-STALE" in {f.code for f in found}


@then("bærer godkendelsen hashen af den revision, lægen godkendte")
def sign_off_carries_hash(register: Register) -> None:
    eff = register.store.effective(_only(register), register.signed.revision_number)
    text = json.dumps(eff.document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert register.signed.revision == "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@then("eksporten til Datatilsynet bærer den samme hash og godkendelsen")
def export_carries_hash(register: Register) -> None:
    exported = exchange.export(register.store, _only(register))
    assert exported["revision"]["hash"] == register.signed.revision
    assert [(s["name"], s["revision"]) for s in exported["sign_offs"]] == [("Dr. Jensen", register.signed.revision)]


@then(parsers.parse("kontrollen den {day:d}. {month} {year:d} melder ingen fejl og ingen advarsel om godkendelsen"))
def no_sign_off_findings(register: Register, day: int, month: str, year: int) -> None:
    _, found = register.store.check(_only(register), _day(day, month, year))
    assert _errors(found) == []
    assert not {f.code for f in found} & {"DPIA-SIGNOFF-MISSING", "DPIA-SIGNOFF-STALE"}


@then(parsers.parse('melder kontrollen den {day:d}. {month} {year:d} fejlen "{code}"'))
def check_reports(register: Register, day: int, month: str, year: int, code: str) -> None:
    _, found = register.store.check(_only(register), _day(day, month, year))
    assert code in {f.code for f in found if f.severity >= Severity.ERROR}


@then("den godkendte revision står uændret i historikken")
def signed_revision_unchanged(register: Register) -> None:
    history = register.store.revisions(_only(register))
    signed = history[register.signed.revision_number - 1]
    assert signed.number == register.signed.revision_number and signed.hash == register.signed.revision
    assert register.store.effective(_only(register), signed.number).hash == register.signed.revision
    assert history[-1].number > signed.number


@then("bliver godkendelsen afvist, fordi fortegnelsen er ændret siden")
def sign_off_refused(register: Register) -> None:
    assert register.refused is not None and register.refused.key == "dpia-signoff-moved"
    text = register.refused.message("da")
    assert f"revision {register.read_revision}" in text and "er nu i revision" in text


@then("der er ingen godkendelse i historikken")
def no_sign_off(register: Register) -> None:
    assert register.store.sign_offs(_only(register)) == []


# -- indlæsning (import) -----------------------------------------------------------------------------------

def _template_file(register: Register, change: Any) -> None:
    exported = exchange.export(register.store, "lbp")
    change(exported["register"])
    register.files.append(("lbp.json", json.dumps(exported, ensure_ascii=False).encode("utf-8")))


@given(parsers.parse('en fil med skabelonen, hvor jeg har tilføjet databehandleren "{vendor}"'))
def file_with_processor(register: Register, vendor: str) -> None:
    _template_file(register, lambda doc: doc["organisations"].append(
        {"id": "it-support", "name": vendor, "kind": "vendor", "contact": {"email": "it@klinik-it.example"}}))


@given("en fil med skabelonen, hvor lægesystemets leverandør står to gange")
def file_with_vendor_twice(register: Register) -> None:
    def twice(doc: dict[str, Any]) -> None:
        vendor = copy.deepcopy(get(doc, resolve(doc, "/organisations[lps-vendor]")))
        doc["organisations"].append(vendor | {"name": "Lægesystemer II A/S"})
    _template_file(register, twice)


@given("en fil med skabelonen, hvor titlen står to gange")
def file_with_title_twice(register: Register) -> None:
    exported = exchange.export(register.store, "lbp")
    twice = '{"title": "Anden titel", ' + json.dumps(exported["register"], ensure_ascii=False)[1:]
    text = json.dumps(exported | {"register": "REGISTER"}, ensure_ascii=False).replace('"REGISTER"', twice)
    register.files.append(("lbp.json", text.encode("utf-8")))


@given("en kliniks eksport, der bygger på en skabelonrevision, som ikke findes i denne fortegnelse")
def clinic_on_unknown_template(register: Register) -> None:
    document = template() | {"id": "clinic-100000000009", "kind": "clinic"}
    elsewhere = {"number": 4, "hash": "sha256:" + hashlib.sha256(b"another database").hexdigest()}
    export = {"format": model.EXPORT_FORMAT, "register": document,
              "revision": {"number": 1, "hash": model.register_hash(document), "author": "Lægerne",
                           "time": "2026-11-01T10:00:00Z", "reason": "eksport"},
              "adoption": {"template": "lbp", "template_revision": elsewhere, "delta": {}}}
    register.files.append(("klinik.json", json.dumps(export, ensure_ascii=False).encode("utf-8")))


@when("jeg indlæser de to filer")
@when("jeg indlæser filen")
def import_files(register: Register) -> None:
    try:
        incoming = [exchange.read(content, name) for name, content in register.files]
        exchange.take_in_all(register.store, incoming, author="DPO", reason=lambda item: f"fra {item.source}")
    except (RegisterError, StoreError) as exc:
        register.import_refused = exc


@then("bliver indlæsningen afvist med en dansk besked, der nævner den anden fil")
def import_refused_naming_file(register: Register) -> None:
    refused = register.import_refused
    assert isinstance(refused, StoreError) and refused.source == "klinik.json"
    text = refused.message("da")
    assert "findes ikke i denne database" in text and not ENGLISH.search(text), text


@then(parsers.parse('bliver filen afvist med fejlen "{code}" ved den anden leverandørs id'))
def refused_at_second_vendor(register: Register, code: str) -> None:
    refused = register.import_refused
    assert isinstance(refused, RegisterError)
    organisations = template()["organisations"]
    where = f"/register/organisations/{len(organisations)}/id"  # appended after the template's own
    assert [(f.code, f.location) for f in refused.findings] == [(code, where)]
    assert not ENGLISH.search(refused.findings[0].message("da"))


@then(parsers.parse('bliver filen afvist med fejlen "{code}" ved "{where}"'))
def refused_at(register: Register, code: str, where: str) -> None:
    refused = register.import_refused
    assert isinstance(refused, RegisterError)
    assert [(f.code, f.location) for f in refused.findings] == [(code, f"/register{where}")]


@then(parsers.parse('skabelonen står uændret i revision 1 uden "{name}"'))
def template_unchanged(register: Register, name: str) -> None:
    assert [r.number for r in register.store.revisions("lbp")] == [1]
    assert name not in json.dumps(register.store.effective("lbp").document, ensure_ascii=False)
    assert [i.id for i in register.store.registers(include_retired=True)] == ["lbp"]
