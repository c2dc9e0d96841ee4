"""docs/rules.md from the code: every finding code the validator can emit, its kind, severity and emitter.

The calls that build a `Finding` are found by reading the source (Python's `ast`): `Finding(...)`, and every
function that passes its own code parameter on to one (`findings.finding`, `constraints.finding`, the readers'
`_fatal`, …), followed to the calls that give the code. Kind follows from the module (spec/findings.md's
scheme); a prose rule's severity is data (profiles/rules/prose-rules.json); second codes are the rows of
profiles/rules/second-codes.json. A code or severity the scan cannot read must be described in `COMPUTED`,
so no new rule goes undocumented.

    python -m kroniker.validators.rulesdoc --write docs/rules.md    (tests/test_rules_doc.py checks it)
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import kroniker
from kroniker.validators import codes

VALIDATORS = Path(__file__).resolve().parent
KRONIKER = Path(kroniker.__file__).resolve().parent

PROFILE, DOCUMENT, PROSE, INPUT, SECOND = "profile constraint", "document rule", "prose rule", "input", "second code"
PACKAGE = "package rule"  # a care package's own rule on its notes (the package's section, its diagnosis)
# The module a finding comes from says what kind of rule it is; any other module reads input.
KINDS = {"constraints.py": PROFILE, "engine.py": PROFILE, "codes.py": PROFILE, "document.py": DOCUMENT,
         "rules/prose.py": PROSE, "package_notes.py": PACKAGE}
SEVERITIES = ("fatal", "error", "warning", "information")
ROLES = ("code", "severity", "message_key", "second")


@dataclass(frozen=True)
class Value:
    """What an argument can be: literal values, the parameter it is passed on from, or what it is said to be."""

    values: frozenset[str] = frozenset()
    param: str | None = None  # the enclosing function's parameter it is passed on from
    unknown: str | None = None  # the expression, when the scan cannot tell
    note: str | None = None  # what COMPUTED says it is, in words


def _verdict_codes() -> frozenset[str]:
    return frozenset({*codes.FINDING.values(), codes.SUBDIVISION})


# Codes and severities computed at run time, by (module, function, expression): what they can be.
COMPUTED: dict[tuple[str, str, str], Callable[[], Value]] = {
    ("kroniker.validators.constraints", "binding", "v.code"): lambda: Value(_verdict_codes()),
    ("kroniker.validators.constraints", "coding", "v.code"): lambda: Value(_verdict_codes()),
    ("kroniker.validators.constraints", "invariants", "_SEVERITY.get(c.severity, Severity.ERROR)"):
        lambda: Value(note="as the profile's constraint says (error, warning)"),
    ("kroniker.validators.budget", "capped", "code"): lambda: Value(frozenset({"*"})),
    ("kroniker.validators.package_notes", "section_rules", "code"):  # validators/note_section.py read_section
        lambda: Value(frozenset({"PACKAGE-NOTE-SECTION", "PACKAGE-NOTE-FIELD", "PACKAGE-NOTE-VALUE"})),
    ("kroniker.validators.budget", "capped", "rest[0].severity"):
        lambda: Value(note="that of the findings it counts"),
}


@dataclass
class Emitter:
    """A constructor of findings: its positional parameters and where each role's value comes from."""

    params: tuple[str, ...]
    defaults: dict[str, ast.expr | None]
    roles: dict[str, Value]


_FINDING_FIELDS = ("severity", "code", "location", "path", "params", "second", "profile_element", "message_key",
                   "line", "column")
BASE = ("kroniker.validators.findings", "Finding")


def _base() -> Emitter:
    return Emitter(_FINDING_FIELDS, dict.fromkeys(_FINDING_FIELDS[2:]), {r: Value(param=r) for r in ROLES})


@dataclass
class Function:
    module: str
    qualname: str
    file: str  # as shown: validators/engine.py
    node: ast.FunctionDef
    cls: str | None
    params: tuple[str, ...]  # positional, without self
    names: frozenset[str]  # every parameter
    defaults: dict[str, ast.expr | None]
    rule_id: str | None  # the id a prose rule is registered under (@rule("…"))


@dataclass
class Module:
    name: str
    file: str
    tree: ast.Module
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # imported name → (module, name)
    modules: dict[str, str] = field(default_factory=dict)  # imported module alias → module
    top: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Site:
    """One call that makes a finding with a code the scan could read."""

    function: Function
    code: Value
    severity: Value
    message_key: Value
    second: Value


def _sources() -> Iterator[tuple[str, str, Path]]:
    for path in sorted(VALIDATORS.rglob("*.py")):
        rel = path.relative_to(VALIDATORS).as_posix()
        name = "kroniker.validators." + rel.removesuffix(".py").replace("/", ".")
        yield name.removesuffix(".__init__"), f"validators/{rel}", path
    for path in sorted(KRONIKER.glob("*.py")):
        yield f"kroniker.{path.stem}".removesuffix(".__init__"), f"kroniker/{path.name}", path


def _read(name: str, file: str, path: Path) -> tuple[Module, list[Function]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=file)
    mod = Module(name, file, tree)
    package = name.rsplit(".", 1)[0]
    for node in ast.walk(tree):  # imports inside functions too (a name means one thing throughout a module)
        if isinstance(node, ast.ImportFrom) and node.module:
            source = node.module if node.level == 0 else package + "." + node.module
            for alias in node.names:
                local = alias.asname or alias.name
                if source in ("kroniker.validators", "kroniker.validators.rules"):
                    mod.modules[local] = f"{source}.{alias.name}"
                else:
                    mod.names[local] = (source, alias.name)
    mod.top = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    functions: list[Function] = []

    def visit(body: list[ast.stmt], cls: str | None, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, node.name, f"{prefix}{node.name}.")
            elif isinstance(node, ast.FunctionDef):
                args = node.args
                positional = [a.arg for a in (*args.posonlyargs, *args.args)]
                if cls is not None and positional and positional[0] in ("self", "cls"):
                    positional = positional[1:]
                defaults: dict[str, ast.expr | None] = {}
                for a, d in zip(reversed([*args.posonlyargs, *args.args]), reversed(args.defaults), strict=False):
                    defaults[a.arg] = d
                for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                    if kd is not None:
                        defaults[a.arg] = kd
                names = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
                functions.append(Function(name, prefix + node.name, file, node, cls, tuple(positional),
                                          frozenset(names), defaults, _rule_id(node)))
                visit(node.body, None, f"{prefix}{node.name}.")

    visit(tree.body, None, "")
    return mod, functions


def _rule_id(node: ast.FunctionDef) -> str | None:
    for d in node.decorator_list:
        if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "rule" and d.args \
                and isinstance(d.args[0], ast.Constant):
            rule_id = d.args[0].value
            if isinstance(rule_id, str):
                return rule_id
    return None


def _callee(call: ast.Call, mod: Module, fn: Function) -> tuple[str, str] | None:
    f = call.func
    if isinstance(f, ast.Name):
        if f.id in mod.top:
            return mod.name, f.id
        return mod.names.get(f.id)
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        if f.value.id in mod.modules:
            return mod.modules[f.value.id], f.attr
        if f.value.id == "self" and fn.qualname.count(".") >= 1:
            return mod.name, f"{fn.qualname.split('.')[0]}.{f.attr}"
    return None


def _calls(fn: Function) -> Iterator[ast.Call]:
    """The calls in a function's own body (not in functions defined inside it: they are functions of their own)."""
    stack: list[ast.AST] = list(fn.node.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _evaluate(expr: ast.expr | None, fn: Function, line: int, depth: int = 0) -> Value:
    if expr is None or (isinstance(expr, ast.Constant) and expr.value is None):
        return Value()
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return Value(frozenset({expr.value}))
    if isinstance(expr, ast.JoinedStr):
        text = "".join(str(v.value) if isinstance(v, ast.Constant) else f"<{_last_name(v)}>" for v in expr.values)
        return Value(frozenset({text}))
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == "Severity":
        return Value(frozenset({expr.attr.lower()}))
    if isinstance(expr, ast.IfExp):
        a, b = _evaluate(expr.body, fn, line, depth + 1), _evaluate(expr.orelse, fn, line, depth + 1)
        if a.param is None and b.param is None and a.unknown is None and b.unknown is None:
            return Value(a.values | b.values)
    if isinstance(expr, ast.Name) and depth < 8:
        if expr.id in fn.names:
            return Value(param=expr.id)
        assigned = _last_assignment(fn, expr.id, line)
        if assigned is not None:
            return _evaluate(assigned, fn, assigned.lineno, depth + 1)
    return Value(unknown=ast.unparse(expr))


def _last_name(v: ast.expr) -> str:
    inner = v.value if isinstance(v, ast.FormattedValue) else v
    if isinstance(inner, ast.Attribute):
        return inner.attr
    if isinstance(inner, ast.Name):
        return inner.id
    return "…"


def _last_assignment(fn: Function, name: str, line: int) -> ast.expr | None:
    """The value last assigned to a plain name before a line of the function (the nearest one wins)."""
    best: ast.expr | None = None
    best_line = -1
    for node in ast.walk(fn.node):
        if isinstance(node, ast.Assign) and node.lineno < line and node.lineno > best_line \
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            best, best_line = node.value, node.lineno
    return best


def _resolve(value: Value, fn: Function) -> Value:
    if value.unknown is not None:
        computed = COMPUTED.get((fn.module, fn.qualname, value.unknown))
        if computed is not None:
            return computed()
    return value


def _bind(call: ast.Call, emitter: Emitter) -> dict[str, ast.expr | None]:
    bound: dict[str, ast.expr | None] = dict(emitter.defaults)
    for name, arg in zip(emitter.params, call.args, strict=False):
        if isinstance(arg, ast.Starred):
            break
        bound[name] = arg
    for kw in call.keywords:
        if kw.arg is not None:
            bound[kw.arg] = kw.value
    return bound


def _roles(call: ast.Call, emitter: Emitter, fn: Function) -> dict[str, Value]:
    bound = _bind(call, emitter)
    out: dict[str, Value] = {}
    for role in ROLES:
        source = emitter.roles[role]
        if source.param is None:
            out[role] = source
        else:
            out[role] = _resolve(_evaluate(bound.get(source.param), fn, call.lineno), fn)
    return out


@cache
def scan() -> tuple[Site, ...]:
    """Every call that makes a finding whose code the scan can tell."""
    modules: dict[str, Module] = {}
    functions: list[Function] = []
    for name, file, path in _sources():
        mod, fns = _read(name, file, path)
        modules[name] = mod
        functions.extend(fns)
    emitters: dict[tuple[str, str], Emitter] = {BASE: _base()}
    changed = True
    while changed:  # wrappers of wrappers: until no function newly passes a parameter on to a finding
        changed = False
        for fn in functions:
            key = (fn.module, fn.qualname)
            if key in emitters or fn.rule_id is not None:  # a prose rule's severity is data, not a parameter
                continue
            for call in _calls(fn):
                target = _callee(call, modules[fn.module], fn)
                if target is None or target not in emitters or target == key:
                    continue
                roles = _roles(call, emitters[target], fn)
                if any(v.param is not None for v in roles.values()):
                    emitters[key] = Emitter(fn.params, fn.defaults, roles)
                    changed = True
                    break
    called = {t for fn in functions for call in _calls(fn) if (t := _callee(call, modules[fn.module], fn))}
    sites: list[Site] = []
    for fn in functions:
        for call in _calls(fn):
            target = _callee(call, modules[fn.module], fn)
            if target is None or target not in emitters or target == (fn.module, fn.qualname):
                continue
            roles = _roles(call, emitters[target], fn)
            if (fn.module, fn.qualname) in emitters and (fn.module, fn.qualname) in called \
                    and any(v.param is not None for v in roles.values()):
                continue  # its callers say what it passes on
            if roles["code"].param is not None:
                raise LookupError(f"{fn.file}:{call.lineno} ({fn.qualname}) passes its code on, but nothing calls it")
            for role in ("code", "severity"):
                if roles[role].unknown is not None:
                    raise LookupError(f"{fn.file}:{call.lineno} ({fn.qualname}): cannot tell the {role} of this "
                                      f"finding ({roles[role].unknown}); write it as a literal or describe it in "
                                      "kroniker.validators.rulesdoc.COMPUTED")
            sites.append(Site(fn, roles["code"], roles["severity"], roles["message_key"], roles["second"]))
    return tuple(sites)


# -- data ---------------------------------------------------------------------------------------------------

def _profiles_json(name: str) -> dict[str, Any]:
    text = resources.files("kroniker.profiles").joinpath(f"rules/{name}").read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def _prose_severity(rule_id: str | None) -> list[str]:
    standards = _profiles_json("prose-rules.json")["standards"]
    assert isinstance(standards, dict)
    out = [f"{cfg['rules'][rule_id]} ({std})" for std, cfg in standards.items()
           if rule_id is not None and rule_id in cfg["rules"]]
    return out or ["not applied: no standard lists it"]


def _severity_text(site: Site) -> list[str]:
    sev = site.severity
    if sev.param is not None:
        return _prose_severity(site.function.rule_id) if site.function.rule_id else ["as its caller says"]
    if sev.note is not None:
        return [sev.note]
    return sorted(sev.values, key=SEVERITIES.index)


@dataclass
class Row:
    code: str
    kind: str
    emitter: str
    severities: list[str] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)


def rows() -> list[Row]:
    """One row per code, kind and emitting function (or data row)."""
    table: dict[tuple[str, str, str], Row] = {}

    def add(code: str, kind: str, emitter: str, severities: list[str], messages: set[str]) -> None:
        row = table.setdefault((code, kind, emitter), Row(code, kind, emitter))
        row.severities += [s for s in severities if s not in row.severities]
        row.messages |= messages

    for site in scan():
        fn = site.function
        kind = KINDS.get(fn.file.removeprefix("validators/"), INPUT)
        where = f"{fn.file}:{fn.qualname}" + (f" (rule {fn.rule_id})" if fn.rule_id else "")
        severities = _severity_text(site)
        key = site.message_key
        messages = set(key.values) or ({"(computed)"} if key.unknown or key.param else set())
        for code in site.code.values:
            add(code, kind, where, severities, messages or {code})
        for second in site.second.values:
            add(second, SECOND, where, severities, set())
    for i, r in enumerate(second_code_rows(), 1):
        on = [*r.get("codes", ()), *(f"invariant:{k}" for k in r.get("keys", ()))]
        at = [*r.get("elements", ()), *r.get("at", ())]
        text = f"profiles/rules/second-codes.json row {i}: " + (", ".join(f"`{c}`" for c in on) or "any")
        text += " at " + ", ".join(f"`{e}`" for e in at) if at else ""
        if r.get("profiles"):
            text += " in " + ", ".join(f"`{p}`" for p in r["profiles"])
        add(r["rule"], SECOND, text, ["that of the finding it is given to"], set())
    return sorted(table.values(), key=lambda r: (r.code.lower(), r.code, r.kind, r.emitter))


def second_code_rows() -> list[dict[str, Any]]:
    data = _profiles_json("second-codes.json")["second_codes"]
    assert isinstance(data, list)
    return data


def codes_emitted() -> set[str]:
    return {r.code for r in rows()}


def markdown() -> str:
    lines = [
        "# Finding codes and where they come from",
        "",
        "Generated from the code by `python -m kroniker.validators.rulesdoc --write docs/rules.md`; do not edit by",
        "hand (tests/test_rules_doc.py fails while this file differs from what the code says). The scheme of codes",
        "and severities is spec/findings.md's.",
        "",
        "- **kind**: *profile constraint* — read from a StructureDefinition (validators/constraints.py, one function",
        "  per kind of constraint; the walk in validators/engine.py only descends); *document rule* — FHIR's rules",
        "  for a document Bundle (validators/document.py); *prose rule* — what MedCom's IGs say only in prose",
        "  (validators/rules/prose.py, applied per standard by profiles/rules/prose-rules.json); *input* — reading",
        "  the input and choosing the profiles; *second code* — the §17 rule id a finding also carries;",
        "  *package rule* — a care package's own rule on its notes (validators/package_notes.py, the section",
        "  and fields its package data names).",
        "- **severity**: as emitted; a prose rule's comes from profiles/rules/prose-rules.json per standard.",
        "- **emitted by**: the file and function that builds the finding (`findings.finding`), or the data row.",
        "- **message**: the key of its text in validators/messages/{da,en}.json (`<…>` is filled in at run time).",
        "- `invariant:<key>` takes the key of the profile's constraint (e.g. `invariant:cpr`); a `*` code is the",
        "  code of the findings a finding counts.",
        "",
        "| code | kind | severity | emitted by | message |",
        "|---|---|---|---|---|",
    ]
    for r in rows():
        messages = ", ".join(f"`{m}`" if not m.startswith("(") else m for m in sorted(r.messages)) or "—"
        lines.append(f"| `{r.code}` | {r.kind} | {', '.join(r.severities)} | {r.emitter} | {messages} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kroniker.validators.rulesdoc", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", help="write the document there (docs/rules.md)")
    group.add_argument("--check", metavar="PATH", help="exit 1 when the document there is not up to date")
    args = parser.parse_args(argv)
    text = markdown()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    elif args.check:
        path = Path(args.check)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date: run python -m kroniker.validators.rulesdoc --write {path}",
                  file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
