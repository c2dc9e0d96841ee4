"""The note's HTML and narrative XHTML: active content is found however it is spelt, MedCom's simplified HTML
passes, other markup is only markup, and nothing in the input is ever resolved, fetched or executed.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kroniker.validators.validate import Validator
from kroniker.validators.xhtml import HtmlProblems, check_narrative, check_note
from tests.builders import NOTE_HTML, shared_note

XHTML = "http://www.w3.org/1999/xhtml"
DIV = f'<div xmlns="{XHTML}">'


def clean(p: HtmlProblems) -> bool:
    return p.syntax is None and not p.active and not p.markup


# -- the note: MedCom's simplified HTML --------------------------------------------------------------------

@pytest.mark.parametrize(("note", "text"), [
    ("Blodtryk 130/76, puls 68.", "Blodtryk 130/76, puls 68."),
    ("<p>Ét afsnit</p><p>og ét til</p>", "Ét afsnit" + "og ét til"),
    ("linje 1<br/>linje 2<br />linje 3", "linje 1" + "linje 2" + "linje 3"),
    ("<b>fed</b> <i>kursiv</i> <u>understreget</u> <tt>mono</tt>", "fed kursiv understreget mono"),
    ("<em>vigtigt</em> og <strong>meget vigtigt</strong>", "vigtigt og meget vigtigt"),
    ("<p><b><i><u>kombineret</u></i></b></p>", "kombineret"),
    ("<x:p>tekst</x:p>", "tekst"),
    # XML reads a line break written CR LF as LF (XML 1.0 §2.11).
    ("<x:p><x:b><x:em>Aktuelt</x:em></x:b><x:br/>\r\n    Smerter</x:p>", "Aktuelt\n    Smerter"),
    ("<p>5 &lt; 7 &amp; 7 &gt; 5 &#229;&#xE6;</p>", "5 < 7 & 7 > 5 åæ"),
    ("<P>STORE <B>BOGSTAVER</B></P>", "STORE BOGSTAVER"),
    ("<p>æøå ÆØÅ 🩺</p><!-- en kommentar -->", "æøå ÆØÅ 🩺"),
])
def test_simplified_html_has_no_problems(note: str, text: str) -> None:
    p = check_note(note)
    assert clean(p), p
    assert p.text == text
    assert not p.has_image


def test_our_own_note_has_no_problems() -> None:
    assert clean(check_note(NOTE_HTML))


@pytest.mark.needs_shared
def test_medcoms_x_prefixed_test_notes_are_xhtml(examples_dir: Path) -> None:
    """MedCom's own test notes write XHTML with an undeclared x: prefix; they are clean simplified HTML."""
    import base64

    notes = []
    for file in sorted(examples_dir.rglob("*.json")):
        raw = file.read_text(encoding="utf-8")
        if "\"data\"" in raw:
            for data in _attachment_data(json.loads(raw)):
                text = base64.b64decode(data).decode("utf-8", "replace")
                if "<x:" in text:
                    notes.append((file.name, text))
    if not notes:
        pytest.skip("no x:-prefixed note among MedCom's examples")
    for name, text in notes:
        p = check_note(text)
        assert clean(p), (name, p)
        assert "<x:" not in p.text and p.text.strip(), name


def _attachment_data(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        att = node.get("valueAttachment")
        if isinstance(att, dict) and isinstance(att.get("data"), str):
            yield att["data"]
        for v in node.values():
            yield from _attachment_data(v)
    elif isinstance(node, list):
        for v in node:
            yield from _attachment_data(v)


# -- active content ----------------------------------------------------------------------------------------

ACTIVE_NOTES = {
    "script": ("<p>a</p><script>alert(1)</script>", "script"),
    "script-upper": ("<SCRIPT>alert(1)</SCRIPT>", "script"),
    "script-x-prefix": ("<x:script>alert(1)</x:script>", "script"),
    "script-svg-ns": ('<p><s:script xmlns:s="http://www.w3.org/2000/svg">alert(1)</s:script></p>', "script"),
    "onclick": ("<p onclick=\"alert(1)\">a</p>", "onclick"),
    "OnClick": ("<p OnClick=\"alert(1)\">a</p>", "onclick"),
    "ONMOUSEOVER": ("<b ONMOUSEOVER=\"alert(1)\">a</b>", "onmouseover"),
    "onerror-on-br": ("<br onerror=\"alert(1)\"/>", "onerror"),
    "onclick-x-prefix": ("<x:p onclick=\"alert(1)\">a</x:p>", "onclick"),
    "javascript": ('<a href="javascript:alert(1)">x</a>', "javascript"),
    "javascript-upper": ('<a href="JAVASCRIPT:alert(1)">x</a>', "javascript"),
    "javascript-mixed": ('<a href="JaVaScRiPt:alert(1)">x</a>', "javascript"),
    "javascript-leading-space": ('<a href="   javascript:alert(1)">x</a>', "javascript"),
    "javascript-tab": ('<a href="java\tscript:alert(1)">x</a>', "script"),
    "javascript-newline": ('<a href="java\nscript:alert(1)">x</a>', "script"),
    "javascript-tab-entity": ('<a href="java&#x09;script:alert(1)">x</a>', "script"),
    "javascript-newline-entity": ('<a href="java&#10;script:alert(1)">x</a>', "script"),
    "javascript-decimal-entity": ('<a href="&#106;avascript:alert(1)">x</a>', "javascript"),
    "javascript-padded-entity": ('<a href="&#0000106;&#0000097;vascript:alert(1)">x</a>', "javascript"),
    "javascript-hex-entity": ('<a href="&#x6A;&#x41;vascript:alert(1)">x</a>', "javascript"),
    "javascript-control-char": ('<a href="\x01javascript:alert(1)">x</a>', "javascript"),
    "javascript-html5-entity": ('<a href="javascript&colon;alert(1)">x</a>', "javascript"),
    "javascript-on-img": ('<img src="javascript:alert(1)"/>', "javascript"),
    "vbscript": ('<a href="vbscript:msgbox(1)">x</a>', "vbscript"),
    "vbscript-upper": ('<a href="VBScript:msgbox(1)">x</a>', "vbscript"),
    "data-html": ('<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data"),
    "iframe": ('<iframe src="https://evil.example/"></iframe>', "iframe"),
    "object": ('<object data="x.swf"></object>', "object"),
    "embed": ('<embed src="x.swf"/>', "embed"),
    "frame": ('<frame src="x.html"/>', "frame"),
    "form": ('<form action="https://evil.example/"><p>a</p></form>', "form"),
    "link": ('<link rel="stylesheet" href="https://evil.example/a.css"/>', "link"),
    "meta": ('<meta http-equiv="refresh" content="0;url=https://evil.example/"/>', "meta"),
    "base": ('<base href="https://evil.example/"/>', "base"),
    "svg": ('<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"/></svg>', "svg"),
    "img-http": ('<img src="http://evil.example/pixel.png"/>', "http://evil.example"),
    "img-https": ('<img src="https://evil.example/pixel.png"/>', "https://evil.example"),
    "img-protocol-relative": ('<img src="//evil.example/pixel.png"/>', "//evil.example"),
    "style-url": ('<p style="background: url(https://evil.example/x.png)">a</p>', "style"),
    "style-url-spaced": ('<p style="background: URL (https://evil.example/x.png)">a</p>', "style"),
    "style-import": ('<p style="@import \'https://evil.example/a.css\'">a</p>', "style"),
    "style-expression": ('<p style="width: expression(alert(1))">a</p>', "style"),
}


@pytest.mark.parametrize(("note", "hint"), ACTIVE_NOTES.values(), ids=ACTIVE_NOTES.keys())
def test_active_content_is_found(note: str, hint: str) -> None:
    p = check_note(note)
    assert p.active, p
    # What is reported names the thing found (case-insensitively: handlers and tags are folded).
    assert any(hint.lower() in a.lower() for a in p.active), p.active


@pytest.mark.parametrize("note", [
    "<style>@import url(https://evil.example/a.css);</style><p>a</p>",
    "<style>p { background: url(https://evil.example/x.png) }</style><p>a</p>",
], ids=["import", "url"])
def test_style_element_loading_external_content_is_active(note: str) -> None:
    p = check_note(note)
    assert p.active, p


def test_well_formed_active_note_has_no_syntax_problem() -> None:
    for name, (note, _) in ACTIVE_NOTES.items():
        if name in ("javascript-control-char", "javascript-html5-entity"):
            continue  # not well-formed XML: a control character / an HTML entity XML does not know
        assert check_note(note).syntax is None, name


def test_active_content_is_not_removed_from_the_text() -> None:
    """Nothing is executed or sanitised: the text content is what the markup holds."""
    p = check_note("<p>før</p><script>document.cookie</script><p>efter</p>")
    assert p.text == "før" + "document.cookie" + "efter"


# -- other markup is markup, not active -------------------------------------------------------------------

MARKUP_NOTES = {
    "table": ("<table><tr><td>BT</td><td>130/76</td></tr></table>", "table"),
    "link": ('<p>Se <a href="https://www.sundhed.dk/">sundhed.dk</a></p>', "a"),
    "anchor": ('<a name="top">Top</a>', "a"),
    "img-data-uri": ('<img src="data:image/png;base64,iVBORw0KGgo="/>', "img"),
    "style-element": ("<style>p { color: red }</style><p>a</p>", "style"),
    "font": ('<font color="red">a</font>', "font"),
    "heading": ("<h1>Overskrift</h1>", "h1"),
    "list": ("<ul><li>a</li></ul>", "ul"),
    "processing-instruction": ("<?php echo 1; ?><p>a</p>", "?"),
}


@pytest.mark.parametrize(("note", "hint"), MARKUP_NOTES.values(), ids=MARKUP_NOTES.keys())
def test_other_markup_is_markup_not_active(note: str, hint: str) -> None:
    p = check_note(note)
    assert p.syntax is None, p
    assert not p.active, p
    assert any(hint in m for m in p.markup), p.markup


def test_image_is_noted() -> None:
    assert check_note('<img src="data:image/png;base64,iVBORw0KGgo="/>').has_image
    assert not check_note("<p>ingen billeder</p>").has_image


def test_style_attribute_is_markup_in_a_note() -> None:
    """§17: the note's simplified HTML has no styling; in a narrative a style attribute is allowed (txt-1)."""
    p = check_note('<p style="color: red">rød tekst</p>')
    assert not p.active
    assert p.markup, p
    assert clean(check_narrative(f'{DIV}<p style="color: red">rød tekst</p></div>'))


# -- not well-formed -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("note", ["<p>ikke lukket", "<p>a</b>", "<p>a & b</p>", "<p a=1>b</p>", "<<<",
                                  "<p>&nbsp;</p>"])
def test_not_well_formed_sets_syntax(note: str) -> None:
    p = check_note(note)
    assert p.syntax, p
    assert isinstance(p.syntax, str)


@pytest.mark.parametrize(("note", "hint"), [
    ("<p>ikke lukket<script>alert(1)</script>", "script"),
    ("<p onclick=alert(1)>uden anførselstegn", "onclick"),
    ('<p>a & b</p><a href="javascript:alert(1)">x</a>', "javascript"),
    ("<p>a</b><iframe src=https://evil.example/></iframe>", "iframe"),
    ("<br><img src=http://evil.example/x.png>", "evil.example"),
])
def test_active_content_is_found_in_not_well_formed_notes(note: str, hint: str) -> None:
    p = check_note(note)
    assert p.syntax, p
    assert any(hint in a for a in p.active), p


def test_text_of_a_not_well_formed_note_is_kept() -> None:
    p = check_note("<p>Smerter & træthed")
    assert p.syntax
    assert "Smerter & træthed" in p.text


# -- entities and DTDs are never resolved -------------------------------------------------------------------

def _secret_file(tmp_path: Path) -> tuple[Path, str]:
    secret = "HEMMELIG-" + "7f3a9c" * 4
    f = tmp_path / "secret.txt"
    f.write_text(secret, encoding="utf-8")
    return f, secret


def _xxe_payloads(uri: str) -> list[str]:
    return [
        f'<!DOCTYPE div [<!ENTITY xxe SYSTEM "{uri}">]>{DIV}<p>&xxe;</p></div>',
        f'<!DOCTYPE div [<!ENTITY % p SYSTEM "{uri}"> %p;]>{DIV}<p>x</p></div>',
        f'<!DOCTYPE div SYSTEM "{uri}">{DIV}<p>x</p></div>',
        f'<?xml version="1.0"?><!DOCTYPE div [<!ENTITY xxe SYSTEM "{uri}">]>{DIV}&xxe;</div>',
    ]


def test_external_entities_are_not_resolved_in_narrative(tmp_path: Path) -> None:
    file, secret = _secret_file(tmp_path)
    for payload in _xxe_payloads(file.as_uri()):
        p = check_narrative(payload)
        assert secret not in p.text, payload
        assert secret not in (p.syntax or ""), payload


def test_external_entities_are_not_resolved_in_notes(tmp_path: Path) -> None:
    file, secret = _secret_file(tmp_path)
    for payload in [*_xxe_payloads(file.as_uri()),
                    f'<!DOCTYPE p [<!ENTITY xxe SYSTEM "{file.as_uri()}">]><p>&xxe;</p>', "<p>&xxe;</p>"]:
        p = check_note(payload)
        assert secret not in p.text, payload
        assert secret not in (p.syntax or ""), payload


def test_etc_passwd_is_not_read() -> None:
    passwd = Path("/etc/passwd")
    if not passwd.exists():
        pytest.skip("no /etc/passwd here")
    first = passwd.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    payload = '<!DOCTYPE div [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + DIV + "<p>&xxe;</p></div>"
    for p in (check_narrative(payload), check_note(payload),
              check_note('<!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><p>&xxe;</p>')):
        assert first not in p.text
        assert "root:" not in p.text


def test_internal_entities_are_not_expanded() -> None:
    """A 'billion laughs' document stays small: internal entities are not expanded either (the text read is
    bounded by the input's size, which is what keeps it quick; how quick is bench/hostile.py's)."""
    lol = '<!ENTITY a0 "hahahahahahahahahaha">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    payload = f"<!DOCTYPE div [{lol}]>{DIV}<p>&a9;</p></div>"
    p = check_narrative(payload)
    note = check_note(f"<!DOCTYPE p [{lol}]><p>&a9;</p>")
    assert "haha" not in p.text and "haha" not in note.text
    assert len(p.text) < 100 and len(note.text) < len(lol) + 100


@pytest.mark.network
def test_no_network_access_for_dtds_or_entities() -> None:
    """A DTD or entity on a server is never fetched: a loopback listener sees no connection."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(5)
        server.setblocking(False)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/x.dtd"
        for payload in _xxe_payloads(url):
            check_narrative(payload)
            check_note(payload)
        check_note(f'<img src="{url}"/>')
        time.sleep(0.2)
        with pytest.raises(BlockingIOError):
            server.accept()


# -- narrative: txt-1 and txt-2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("div", [
    f"{DIV}<p>Patient <b>Bente</b></p></div>",
    f"{DIV}<table><tr><th>CPR</th><td>1505629996</td></tr></table></div>",
    f'{DIV}<p style="color: red">rød</p><span class="x">y</span></div>',
    f'{DIV}<a href="https://www.sundhed.dk/">sundhed.dk</a> <a name="top">top</a></div>',
    f"{DIV}<h1>a</h1><ul><li>b</li></ul><ol><li>c</li></ol><pre>d</pre><hr/><br/>e</div>",
    f'<x:div xmlns:x="{XHTML}"><x:p>tekst</x:p></x:div>',
])
def test_basic_html_narrative_is_clean(div: str) -> None:
    p = check_narrative(div)
    assert clean(p), p
    assert p.text.strip()


def test_narrative_text_is_its_content() -> None:
    assert check_narrative(f"{DIV}<p>Bente</p><p>Test</p> Lænderyg</div>").text == "BenteTest Lænderyg"


@pytest.mark.parametrize("check", [check_narrative, check_note], ids=["narrative", "note"])
def test_text_content_is_in_document_order(check: Callable[[str], HtmlProblems]) -> None:
    assert check(f"{DIV}<p>Bente <b>Test</b></p> Lænderyg</div>").text == "Bente Test Lænderyg"


@pytest.mark.parametrize("div", [
    "<div><p>uden navnerum</p></div>",
    '<div xmlns="http://www.w3.org/1999/xhtml2"><p>forkert navnerum</p></div>',
    f"<p xmlns=\"{XHTML}\">ikke en div</p>",
    f"<span xmlns=\"{XHTML}\">ikke en div</span>",
])
def test_txt1_root_must_be_an_xhtml_div(div: str) -> None:
    p = check_narrative(div)
    assert p.syntax is None
    assert p.markup, p


@pytest.mark.parametrize(("div", "hint"), [
    (f"{DIV}<script>alert(1)</script><p>a</p></div>", "script"),
    (f'{DIV}<p onclick="alert(1)">a</p></div>', "onclick"),
    (f'{DIV}<a href="javascript:alert(1)">a</a></div>', "javascript"),
    (f'{DIV}<img src="https://evil.example/x.png"/>a</div>', "evil.example"),
    (f'{DIV}<iframe src="https://evil.example/"/>a</div>', "iframe"),
    (f'{DIV}<p style="background:url(https://evil.example/x.png)">a</p></div>', "style"),
])
def test_txt1_active_content_in_narrative(div: str, hint: str) -> None:
    p = check_narrative(div)
    assert any(hint in a for a in p.active), p


@pytest.mark.parametrize("div", [f"{DIV}<font>a</font></div>", f"{DIV}<center>a</center></div>",
                                 f"{DIV}<blink>a</blink></div>"])
def test_txt1_elements_outside_basic_html(div: str) -> None:
    p = check_narrative(div)
    assert p.markup and not p.active, p


@pytest.mark.parametrize("div", [f"{DIV}</div>", f"{DIV}   \n\t </div>", f"{DIV}<p> </p><br/></div>",
                                 f"{DIV}<!-- kun en kommentar --></div>"])
def test_txt2_empty_narrative_has_no_text(div: str) -> None:
    p = check_narrative(div)
    assert p.syntax is None
    assert not p.text.strip()
    assert not p.has_image


def test_txt2_an_image_is_content() -> None:
    p = check_narrative(f'{DIV}<img src="#logo"/></div>')
    assert clean(p), p
    assert p.has_image


@pytest.mark.parametrize("div", [f"{DIV}<p>ikke lukket</div>", f"{DIV}a & b</div>", "<div", "", "tekst"])
def test_narrative_not_well_formed(div: str) -> None:
    assert check_narrative(div).syntax


# -- the same checks in a real validation --------------------------------------------------------------------

def _with_patient_div(validator: Validator, div: str) -> set[tuple[str, str]]:
    doc = shared_note()
    assert doc["entry"][2]["resource"]["resourceType"] == "Patient"
    doc["entry"][2]["resource"]["text"]["div"] = div
    report = validator.validate(json.dumps(doc).encode("utf-8"))
    return {(f.code, f.location) for f in report.errors()}


@pytest.mark.parametrize(("div", "rule"), [
    (f"{DIV}</div>", "invariant:txt-2"),
    (f"{DIV}  <p> </p></div>", "invariant:txt-2"),
    (f"{DIV}<script>alert(1)</script>Bente</div>", "invariant:txt-1"),
    ("<div>Bente</div>", "invariant:txt-1"),
    (f'{DIV}<p onclick="alert(1)">Bente</p></div>', "invariant:txt-1"),
])
def test_narrative_rules_in_a_document(validator: Validator, div: str, rule: str) -> None:
    assert (rule, "Bundle.entry[2].resource.text.div") in _with_patient_div(validator, div)


def test_clean_narrative_in_a_document_breaks_no_txt_rule(validator: Validator) -> None:
    errors = _with_patient_div(validator, f"{DIV}<p>Bente Test Lænderyg</p></div>")
    assert not {code for code, _ in errors if code.startswith("invariant:txt")}
