"""A compiler from FHIRPath to Python closures, for the subset that invariants use.

Interpreting FHIRPath with fhirpathpy costs 0.03–0.8 ms per evaluation; ele-1-like invariants sit on
almost every element, and MedCom's regex invariants on many. Each expression is parsed once into nested
closures over plain JSON (collections are lists). What this compiler does not cover raises Unsupported at
compile time, and the caller falls back to fhirpathpy for that expression.

Semantics follow FHIRPath N1 for what is covered: collections, empty propagation, three-valued logic for
and/or/xor/implies, singleton evaluation of collections in operators.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Fn = Callable[[list[Any], "Env"], list[Any]]

# Capitalised FHIR type names used as JSON suffixes of choice elements (valueQuantity, effectiveDateTime).
_TYPE_SUFFIXES = frozenset(
    "Base64Binary Boolean Canonical Code Date DateTime Decimal Id Instant Integer Markdown Oid PositiveInt String "
    "Time UnsignedInt Uri Url Uuid Address Age Annotation Attachment CodeableConcept Coding ContactPoint Count "
    "Distance Duration HumanName Identifier Money Period Quantity Range Ratio Reference SampledData Signature "
    "Timing ContactDetail Contributor DataRequirement Expression ParameterDefinition RelatedArtifact "
    "TriggerDefinition UsageContext Dosage Meta".split())


class Unsupported(Exception):
    """The expression uses something this compiler does not do (fhirpathpy will)."""


@dataclass
class Env:
    this: Any
    resource: Any
    root: Any
    resolve: Callable[[str], Any]
    html_checks: Callable[[Any], bool]


# -- tokens ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<delimited>`[^`]*`)
  | (?P<ext>%[A-Za-z_][A-Za-z0-9_]*|%'[^']*')
  | (?P<var>\$this|\$index|\$total)
  | (?P<op><=|>=|!=|!~|=|~|<|>|\||&|\+|-|\*|/)
  | (?P<punct>[().,\[\]{}])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X | re.S)


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise Unsupported(f"cannot read {expr[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        out.append((kind, m.group()))
    out.append(("eof", ""))
    return out


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(m.group(1), m.group(1)), body)


# -- helpers on collections --------------------------------------------------------------------------------

def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(x for x in v if x is not None)
        elif v is not None:
            out.append(v)
    return out


def _member(items: list[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if name in item:
            v = item[name]
            if isinstance(v, list):
                out.extend(x for x in v if x is not None)
            elif v is not None:
                out.append(v)
            continue
        for key, v in item.items():  # a choice element: `value` finds valueQuantity
            if key.startswith(name) and key[len(name):] in _TYPE_SUFFIXES:
                if isinstance(v, list):
                    out.extend(x for x in v if x is not None)
                elif v is not None:
                    out.append(v)
    return out


def _single(values: list[Any]) -> Any:
    if len(values) > 1:
        raise _EvalError("expected a single value")
    return values[0] if values else None


class _EvalError(Exception):
    pass


def _truth(values: list[Any]) -> bool | None:
    """FHIRPath singleton evaluation of a collection as a Boolean (None = empty)."""
    if not values:
        return None
    if len(values) == 1:
        v = values[0]
        return v if isinstance(v, bool) else True
    raise _EvalError("a collection of several items used as a Boolean")


def _b(v: bool | None) -> list[Any]:
    return [] if v is None else [v]


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) or isinstance(b, dict):
        return a == b
    return a == b


# -- the compiler -----------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokens(expr)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.toks[self.i]
        if value is not None and tok[1] != value:
            raise Unsupported(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    # precedence climbing: implies < or/xor < and < in/contains < =,!= < <,> < | < +,- < *,/ < is/as
    def expression(self) -> Fn:
        return self._implies()

    def _implies(self) -> Fn:
        left = self._or()
        while self.peek() == ("ident", "implies"):
            self.take()
            right = self._or()
            left = _implies(left, right)
        return left

    def _or(self) -> Fn:
        left = self._and()
        while self.peek()[1] in ("or", "xor") and self.peek()[0] == "ident":
            op = self.take()[1]
            right = self._and()
            left = _or(left, right) if op == "or" else _xor(left, right)
        return left

    def _and(self) -> Fn:
        left = self._membership()
        while self.peek() == ("ident", "and"):
            self.take()
            right = self._membership()
            left = _and(left, right)
        return left

    def _membership(self) -> Fn:
        left = self._equality()
        while self.peek()[0] == "ident" and self.peek()[1] in ("in", "contains"):
            op = self.take()[1]
            right = self._equality()
            left = _in(left, right) if op == "in" else _in(right, left)
        return left

    def _equality(self) -> Fn:
        left = self._inequality()
        while self.peek()[1] in ("=", "!=") and self.peek()[0] == "op":
            op = self.take()[1]
            right = self._inequality()
            left = _equals(left, right, op == "!=")
        return left

    def _inequality(self) -> Fn:
        left = self._union()
        while self.peek()[1] in ("<", ">", "<=", ">=") and self.peek()[0] == "op":
            op = self.take()[1]
            right = self._union()
            left = _compare(left, right, op)
        return left

    def _union(self) -> Fn:
        left = self._additive()
        while self.peek() == ("op", "|"):
            self.take()
            right = self._additive()
            left = _union(left, right)
        return left

    def _additive(self) -> Fn:
        left = self._multiplicative()
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-", "&"):
            op = self.take()[1]
            right = self._multiplicative()
            left = _arith(left, right, op)
        return left

    def _multiplicative(self) -> Fn:
        left = self._type_expr()
        while (self.peek()[0] == "op" and self.peek()[1] in ("*", "/")) or \
                (self.peek()[0] == "ident" and self.peek()[1] in ("mod", "div")):
            op = self.take()[1]
            right = self._type_expr()
            left = _arith(left, right, op)
        return left

    def _type_expr(self) -> Fn:
        left = self._invocation_chain()
        if self.peek()[0] == "ident" and self.peek()[1] in ("is", "as"):
            raise Unsupported("is/as operators")
        return left

    def _invocation_chain(self) -> Fn:
        fn = self._term()
        while True:
            tok = self.peek()
            if tok == ("punct", "."):
                self.take()
                fn = self._invocation(fn)
            elif tok == ("punct", "["):
                self.take()
                index = self.expression()
                self.take("]")
                fn = _indexer(fn, index)
            else:
                return fn

    def _term(self) -> Fn:
        kind, text = self.peek()
        if kind == "string":
            self.take()
            value = _unquote(text)
            return lambda focus, env: [value]
        if kind == "number":
            self.take()
            num: Any = float(text) if "." in text else int(text)
            return lambda focus, env: [num]
        if kind == "var":
            self.take()
            if text != "$this":
                raise Unsupported(text)
            return lambda focus, env: [env.this] if env.this is not None else []
        if kind == "ext":
            self.take()
            name = text[1:].strip("'")
            if name in ("resource", "context"):
                return lambda focus, env: [env.resource]
            if name == "rootResource":
                return lambda focus, env: [env.root]
            if name == "ucum":
                return lambda focus, env: ["http://unitsofmeasure.org"]
            raise Unsupported(text)
        if (kind, text) == ("punct", "("):
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if (kind, text) == ("punct", "{"):
            self.take()
            self.take("}")
            return lambda focus, env: []
        if kind == "ident":
            if text in ("true", "false"):
                self.take()
                val = text == "true"
                return lambda focus, env: [val]
            # a first path step or a function on the focus
            return self._invocation(lambda focus, env: focus)
        if kind == "delimited":
            return self._invocation(lambda focus, env: focus)
        raise Unsupported(f"unexpected {text!r}")

    def _invocation(self, base: Fn) -> Fn:
        kind, name = self.take()
        if kind == "delimited":
            name = name[1:-1]
        elif kind != "ident":
            raise Unsupported(f"unexpected {name!r}")
        if self.peek() == ("punct", "("):
            self.take()
            args: list[Fn] = []
            if self.peek() != ("punct", ")"):
                args.append(self.expression())
                while self.peek() == ("punct", ","):
                    self.take()
                    args.append(self.expression())
            self.take(")")
            return _function(name, base, args, self)
        return _navigate(base, name)


def _navigate(base: Fn, name: str) -> Fn:
    def nav(focus: list[Any], env: Env) -> list[Any]:
        items = base(focus, env)
        # A resource type name as the first step (e.g. `Observation.value`) selects the resource itself.
        if name[:1].isupper() and any(isinstance(i, dict) and i.get("resourceType") == name for i in items):
            return [i for i in items if isinstance(i, dict) and i.get("resourceType") == name]
        return _member(items, name)
    nav.step = (base, name)  # type: ignore[attr-defined]  # lets ofType(T) become the typed JSON key
    return nav


def _implies(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x = _truth(a(focus, env))
        if x is False:
            return [True]
        y = _truth(b(focus, env))
        if x is True:
            return _b(y)
        return [True] if y is True else []
    return f


def _or(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x = _truth(a(focus, env))
        if x is True:
            return [True]
        y = _truth(b(focus, env))
        if y is True:
            return [True]
        return [False] if x is False and y is False else []
    return f


def _xor(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x, y = _truth(a(focus, env)), _truth(b(focus, env))
        return [] if x is None or y is None else [x != y]
    return f


def _and(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x = _truth(a(focus, env))
        if x is False:
            return [False]
        y = _truth(b(focus, env))
        if y is False:
            return [False]
        return [True] if x is True and y is True else []
    return f


def _equals(a: Fn, b: Fn, negate: bool) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x, y = a(focus, env), b(focus, env)
        if not x or not y:
            return []
        if len(x) != len(y):
            return [negate]
        same = all(_eq(p, q) for p, q in zip(x, y, strict=True))
        return [same != negate]
    return f


def _compare(a: Fn, b: Fn, op: str) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x, y = _single(a(focus, env)), _single(b(focus, env))
        if x is None or y is None:
            return []
        if isinstance(x, str) != isinstance(y, str):
            raise _EvalError("comparing a string with a number")
        return [{"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]]
    return f


def _union(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for v in a(focus, env) + b(focus, env):
            if not any(_eq(v, w) for w in out):
                out.append(v)
        return out
    return f


def _in(a: Fn, b: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x, y = a(focus, env), b(focus, env)
        if not x:
            return []
        v = _single(x)
        return [any(_eq(v, w) for w in y)]
    return f


def _arith(a: Fn, b: Fn, op: str) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        x, y = _single(a(focus, env)), _single(b(focus, env))
        if op == "&":
            return [("" if x is None else str(x)) + ("" if y is None else str(y))]
        if x is None or y is None:
            return []
        if op == "+":
            return [x + y]
        if isinstance(x, str) or isinstance(y, str):
            raise _EvalError("arithmetic on a string")
        if op == "-":
            return [x - y]
        if op == "*":
            return [x * y]
        if y == 0:
            return []
        if op == "/":
            return [x / y]
        if op == "div":
            return [int(x // y)]
        return [x % y]  # mod
    return f


def _indexer(base: Fn, index: Fn) -> Fn:
    def f(focus: list[Any], env: Env) -> list[Any]:
        items = base(focus, env)
        i = _single(index(focus, env))
        return [items[i]] if isinstance(i, int) and 0 <= i < len(items) else []
    return f


def _each(items: list[Any], crit: Fn, env: Env) -> list[tuple[Any, list[Any]]]:
    out = []
    for item in items:
        sub = Env(item, env.resource, env.root, env.resolve, env.html_checks)
        out.append((item, crit([item], sub)))
    return out


def _function(name: str, base: Fn, args: list[Fn], parser: _Parser) -> Fn:
    n = len(args)

    def arg0(focus: list[Any], env: Env) -> Any:
        return _single(args[0](focus, env))

    if name == "exists":
        if n == 0:
            return lambda focus, env: [bool(base(focus, env))]
        return lambda focus, env: [any(_truth(r) is True for _, r in _each(base(focus, env), args[0], env))]
    if name == "empty" and n == 0:
        return lambda focus, env: [not base(focus, env)]
    if name == "not" and n == 0:
        return lambda focus, env: _b(None if (t := _truth(base(focus, env))) is None else not t)
    if name == "count" and n == 0:
        return lambda focus, env: [len(base(focus, env))]
    if name == "first" and n == 0:
        return lambda focus, env: base(focus, env)[:1]
    if name == "hasValue" and n == 0:
        return lambda focus, env: [len(v := base(focus, env)) == 1 and not isinstance(v[0], (dict, list))]
    if name == "where" and n == 1:
        return lambda focus, env: [i for i, r in _each(base(focus, env), args[0], env) if _truth(r) is True]
    if name == "select" and n == 1:
        return lambda focus, env: _flatten([r for _, r in _each(base(focus, env), args[0], env)])
    if name == "all" and n == 1:
        return lambda focus, env: [all(_truth(r) is True for _, r in _each(base(focus, env), args[0], env))]
    if name == "intersect" and n == 1:
        # FHIRPath: the elements in both collections, duplicates eliminated (obs-7 compares codings this way).
        def intersect(focus: list[Any], env: Env) -> list[Any]:
            other = args[0](focus, env)
            out: list[Any] = []
            for v in base(focus, env):
                if any(_eq(v, w) for w in other) and not any(_eq(v, w) for w in out):
                    out.append(v)
            return out
        return intersect
    if name == "isDistinct" and n == 0:
        def distinct(focus: list[Any], env: Env) -> list[Any]:
            items = base(focus, env)
            return [all(not _eq(items[i], items[j]) for i in range(len(items)) for j in range(i))]
        return distinct
    if name in ("matches", "startsWith", "endsWith", "contains") and n == 1:
        if name == "matches":
            cache: dict[str, re.Pattern[str]] = {}

            def matches(focus: list[Any], env: Env) -> list[Any]:
                s, pattern = _single(base(focus, env)), arg0(focus, env)
                if s is None or pattern is None:
                    return []
                if not isinstance(s, str):
                    return []
                rx = cache.get(pattern)
                if rx is None:
                    rx = cache[pattern] = re.compile(pattern, re.S)
                return [rx.search(s) is not None]
            return matches

        def string_test(focus: list[Any], env: Env) -> list[Any]:
            s, other = _single(base(focus, env)), arg0(focus, env)
            if not isinstance(s, str) or not isinstance(other, str):
                return []
            return [s.startswith(other) if name == "startsWith" else s.endswith(other) if name == "endsWith"
                    else other in s]
        return string_test
    if name == "toString" and n == 0:
        def to_string(focus: list[Any], env: Env) -> list[Any]:
            v = _single(base(focus, env))
            if v is None or isinstance(v, (dict, list)):
                return []
            return ["true" if v is True else "false" if v is False else str(v)]
        return to_string
    if name == "toInteger" and n == 0:
        def to_integer(focus: list[Any], env: Env) -> list[Any]:
            v = _single(base(focus, env))
            if isinstance(v, bool):
                return [int(v)]
            if isinstance(v, int):
                return [v]
            if isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v):
                return [int(v)]
            return []
        return to_integer
    if name == "length" and n == 0:
        return lambda focus, env: [len(v)] if isinstance(v := _single(base(focus, env)), str) else []
    if name == "substring" and n in (1, 2):
        def substring(focus: list[Any], env: Env) -> list[Any]:
            s = _single(base(focus, env))
            start = arg0(focus, env)
            if not isinstance(s, str) or not isinstance(start, int) or start < 0 or start >= len(s):
                return []
            if n == 2:
                length = _single(args[1](focus, env))
                return [s[start:start + length]] if isinstance(length, int) else []
            return [s[start:]]
        return substring
    if name == "ofType" and n == 1:
        # JSON carries a choice element's type in its key: value.ofType(Quantity) is valueQuantity.
        step = getattr(base, "step", None)
        type_name = parser.toks[parser.i - 2][1]  # the argument, an identifier just before ")"
        if step is None or not type_name[:1].isalpha():
            raise Unsupported("ofType() not on a choice element")
        prev, member = step
        key = member + type_name[0].upper() + type_name[1:]
        return lambda focus, env: _member(prev(focus, env), key)
    if name == "resolve" and n == 0:
        def resolve(focus: list[Any], env: Env) -> list[Any]:
            out = []
            for item in base(focus, env):
                ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
                if isinstance(ref, str):
                    target = env.resolve(ref)
                    if target is not None:
                        out.append(target)
            return out
        return resolve
    if name == "htmlChecks" and n == 0:
        return lambda focus, env: [all(env.html_checks(v) for v in base(focus, env))]
    if name == "iif" and n in (2, 3):
        def iif(focus: list[Any], env: Env) -> list[Any]:
            items = base(focus, env)
            sub_env = Env(items[0] if len(items) == 1 else env.this, env.resource, env.root, env.resolve,
                          env.html_checks)
            cond = _truth(args[0](items, sub_env))
            if cond is True:
                return args[1](items, sub_env)
            return args[2](items, sub_env) if n == 3 else []
        return iif
    if name == "trace" and n >= 1:
        return base
    if name in ("upper", "lower") and n == 0:
        return lambda focus, env: [getattr(v, name)()] if isinstance(v := _single(base(focus, env)), str) else []
    raise Unsupported(f"{name}() with {n} argument(s)")


@dataclass
class Compiled:
    expression: str
    fn: Fn

    def __call__(self, value: Any, env: Env) -> list[Any]:
        return self.fn([value], env)


def compile_expression(expression: str) -> Compiled:
    """Compile one FHIRPath expression; raises Unsupported for what this compiler does not cover."""
    parser = _Parser(expression)
    fn = parser.expression()
    if parser.peek()[0] != "eof":
        raise Unsupported(f"trailing {parser.peek()[1]!r}")
    return Compiled(expression, fn)


EvalError = _EvalError
