"""A small evaluator for the subset of CEL that CRD validation rules use.

Supported: literals (int, uint `1u`, double, string, bytes-less, bool, null, lists, maps),
`self`/`oldSelf` and other variables, field access `a.b`, index `a[i]`/`a['k']`, `has(a.b)`,
`!`, unary `-`, `* / %`, `+ -` (numbers, strings, lists), comparisons, `in`, `&&`, `||` (with
CEL's error-absorbing semantics), `?:`, functions size/int/uint/double/string/bool, methods
size/contains/startsWith/endsWith/matches/lowerAscii/upperAscii/trim, and the macros
all/exists/exists_one/map/filter. Not supported: timestamps, durations, type(), optional
types, quantities, and the rest of the Kubernetes CEL libraries.
"""

import re


class CelError(Exception):
    pass


# ------------------------------------------------------------------ lexer

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0x[0-9a-fA-F]+u?|\d+u?)
  | (?P<str>[rR]?(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'))
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:.,\[\](){}])
""", re.X)


def _lex(src):
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise CelError(f"syntax error at {pos}: {src[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        out.append((kind, m.group(kind)))
    out.append(("eof", None))
    return out


def _unquote(tok):
    raw = tok[0] in "rR"
    body = tok[2:-1] if raw else tok[1:-1]
    if raw:
        return body
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)),
                  body)


class UInt(int):
    pass


# ------------------------------------------------------------------ parser -> AST tuples

class _Parser:
    def __init__(self, src):
        self.toks = _lex(src)
        self.i = 0

    def peek(self, val=None):
        k, v = self.toks[self.i]
        if val is None:
            return (k, v)
        return v == val and k in ("op", "id")

    def take(self, val=None):
        k, v = self.toks[self.i]
        if val is not None and v != val:
            raise CelError(f"expected {val!r}, found {v!r}")
        self.i += 1
        return (k, v)

    def parse(self):
        e = self.expr()
        if self.toks[self.i][0] != "eof":
            raise CelError(f"unexpected {self.toks[self.i][1]!r}")
        return e

    def expr(self):
        c = self.or_()
        if self.peek("?"):
            self.take("?")
            a = self.expr()
            self.take(":")
            b = self.expr()
            return ("cond", c, a, b)
        return c

    def or_(self):
        e = self.and_()
        while self.peek("||"):
            self.take()
            e = ("or", e, self.and_())
        return e

    def and_(self):
        e = self.rel()
        while self.peek("&&"):
            self.take()
            e = ("and", e, self.rel())
        return e

    def rel(self):
        e = self.add()
        while True:
            k, v = self.peek()
            if v in ("==", "!=", "<", "<=", ">", ">=") and k == "op" or (k == "id" and v == "in"):
                self.take()
                e = ("bin", v, e, self.add())
            else:
                return e

    def add(self):
        e = self.mul()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            e = ("bin", op, e, self.mul())
        return e

    def mul(self):
        e = self.unary()
        while self.peek()[1] in ("*", "/", "%") and self.peek()[0] == "op":
            op = self.take()[1]
            e = ("bin", op, e, self.unary())
        return e

    def unary(self):
        if self.peek("!"):
            self.take()
            return ("not", self.unary())
        if self.peek("-"):
            self.take()
            return ("neg", self.unary())
        return self.postfix()

    def args(self):
        out = []
        self.take("(")
        if not self.peek(")"):
            out.append(self.expr())
            while self.peek(","):
                self.take()
                out.append(self.expr())
        self.take(")")
        return out

    def postfix(self):
        e = self.primary()
        while True:
            if self.peek("."):
                self.take()
                k, name = self.take()
                if k != "id":
                    raise CelError(f"expected a field name, found {name!r}")
                if self.peek("("):
                    e = ("method", e, name, self.args())
                else:
                    e = ("field", e, name)
            elif self.peek("["):
                self.take()
                idx = self.expr()
                self.take("]")
                e = ("index", e, idx)
            else:
                return e

    def primary(self):
        k, v = self.take()
        if k == "num":
            if v.endswith("u"):
                return ("lit", UInt(int(v[:-1], 0)))
            if "." in v or "e" in v.lower() and not v.lower().startswith("0x"):
                return ("lit", float(v))
            return ("lit", int(v, 0))
        if k == "str":
            return ("lit", _unquote(v))
        if k == "id":
            if v == "true":
                return ("lit", True)
            if v == "false":
                return ("lit", False)
            if v == "null":
                return ("lit", None)
            if self.peek("("):
                return ("call", v, self.args())
            return ("var", v)
        if v == "(":
            e = self.expr()
            self.take(")")
            return e
        if v == "[":
            items = []
            if not self.peek("]"):
                items.append(self.expr())
                while self.peek(","):
                    self.take()
                    if self.peek("]"):
                        break
                    items.append(self.expr())
            self.take("]")
            return ("list", items)
        if v == "{":
            items = []
            if not self.peek("}"):
                while True:
                    key = self.expr()
                    self.take(":")
                    items.append((key, self.expr()))
                    if not self.peek(","):
                        break
                    self.take()
            self.take("}")
            return ("map", items)
        raise CelError(f"unexpected {v!r}")


def compile_rule(src):
    return _Parser(src).parse()


def references(ast, name):
    """True if the AST mentions variable `name` (used to find transition rules)."""
    if isinstance(ast, tuple):
        if ast[0] == "var" and ast[1] == name:
            return True
        return any(references(a, name) for a in ast[1:])
    if isinstance(ast, list):
        return any(references(a, name) for a in ast)
    return False


# ------------------------------------------------------------------ evaluator

def _kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, UInt):
        return "uint"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    if v is None:
        return "null"
    return type(v).__name__


def _num(v):
    return _kind(v) in ("int", "uint", "double")


def _eq(a, b):
    if _num(a) and _num(b):
        return a == b
    if _kind(a) != _kind(b):
        if a is None or b is None:
            return False
        raise CelError(f"no such overload: {_kind(a)} == {_kind(b)}")
    if isinstance(a, list):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return a == b


def _cmp(op, a, b):
    if not ((_num(a) and _num(b)) or (_kind(a) == _kind(b) and _kind(a) in ("string", "bool"))):
        raise CelError(f"no such overload: {_kind(a)} {op} {_kind(b)}")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _arith(op, a, b):
    ka, kb = _kind(a), _kind(b)
    if op == "+" and ka == kb and ka in ("string", "list"):
        return a + b
    if not (_num(a) and _num(b)) or (ka != kb):
        raise CelError(f"no such overload: {ka} {op} {kb}")
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        if ka == "double":
            return a / b
        if b == 0:
            raise CelError("division by zero")
        r = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
    else:
        if ka == "double":
            raise CelError("no such overload: double % double")
        if b == 0:
            raise CelError("modulus by zero")
        r = abs(a) % abs(b) * (1 if a >= 0 else -1)
    if ka == "uint":
        if r < 0:
            raise CelError("unsigned integer overflow")
        return UInt(r)
    if ka == "int" and not (-(2 ** 63) <= r < 2 ** 63):
        raise CelError("integer overflow")
    return r


def _size(v):
    if isinstance(v, (str, list, dict)):
        return len(v)
    raise CelError(f"no such overload: size({_kind(v)})")


def _select(obj, name, test_only=False):
    if isinstance(obj, dict):
        if name in obj:
            return True if test_only else obj[name]
        if test_only:
            return False
        raise CelError(f"no such key: {name}")
    raise CelError(f"type '{_kind(obj)}' does not support field selection")


def evaluate(ast, env):
    """Evaluates a compiled rule. Raises CelError on evaluation errors."""
    t = ast[0]
    if t == "lit":
        return ast[1]
    if t == "var":
        if ast[1] not in env:
            raise CelError(f"undeclared reference to '{ast[1]}'")
        return env[ast[1]]
    if t == "field":
        return _select(evaluate(ast[1], env), ast[2])
    if t == "index":
        base = evaluate(ast[1], env)
        idx = evaluate(ast[2], env)
        if isinstance(base, list):
            if _kind(idx) not in ("int", "uint") or not 0 <= idx < len(base):
                raise CelError(f"index out of range: {idx}")
            return base[idx]
        if isinstance(base, dict):
            if idx not in base:
                raise CelError(f"no such key: {idx}")
            return base[idx]
        raise CelError(f"no such overload: {_kind(base)}[{_kind(idx)}]")
    if t == "list":
        return [evaluate(e, env) for e in ast[1]]
    if t == "map":
        return {evaluate(k, env): evaluate(v, env) for k, v in ast[1]}
    if t == "not":
        v = evaluate(ast[1], env)
        if not isinstance(v, bool):
            raise CelError(f"no such overload: !{_kind(v)}")
        return not v
    if t == "neg":
        v = evaluate(ast[1], env)
        if not _num(v) or isinstance(v, UInt):
            raise CelError(f"no such overload: -{_kind(v)}")
        return -v
    if t in ("and", "or"):
        short = t == "or"  # value that decides the result
        err = None
        for side in (ast[1], ast[2]):
            try:
                v = evaluate(side, env)
                if not isinstance(v, bool):
                    raise CelError(f"no such overload: {_kind(v)} {'||' if short else '&&'}")
                if v == short:
                    return short
            except CelError as e:
                err = err or e
        if err:
            raise err
        return not short
    if t == "cond":
        c = evaluate(ast[1], env)
        if not isinstance(c, bool):
            raise CelError("no such overload: ternary condition must be bool")
        return evaluate(ast[2] if c else ast[3], env)
    if t == "bin":
        op = ast[1]
        a = evaluate(ast[2], env)
        b = evaluate(ast[3], env)
        if op == "==":
            return _eq(a, b)
        if op == "!=":
            return not _eq(a, b)
        if op in ("<", "<=", ">", ">="):
            return _cmp(op, a, b)
        if op == "in":
            if isinstance(b, list):
                return any(_eq(a, x) for x in b
                           if (_num(a) and _num(x)) or _kind(a) == _kind(x))
            if isinstance(b, dict):
                return a in b
            raise CelError(f"no such overload: {_kind(a)} in {_kind(b)}")
        return _arith(op, a, b)
    if t == "call":
        return _call(ast[1], ast[2], env)
    if t == "method":
        return _method(ast[1], ast[2], ast[3], env)
    raise CelError(f"unknown node {t}")


def _call(name, args, env):
    if name == "has":
        if len(args) != 1 or args[0][0] != "field":
            raise CelError("invalid argument to has() macro")
        return _select(evaluate(args[0][1], env), args[0][2], test_only=True)
    vals = [evaluate(a, env) for a in args]
    if name == "size" and len(vals) == 1:
        return _size(vals[0])
    if name == "int" and len(vals) == 1:
        v = vals[0]
        if isinstance(v, bool):
            raise CelError("no such overload: int(bool)")
        try:
            return int(v)
        except (TypeError, ValueError):
            raise CelError(f"cannot convert {v!r} to int")
    if name == "uint" and len(vals) == 1:
        return UInt(int(vals[0]))
    if name == "double" and len(vals) == 1:
        return float(vals[0])
    if name == "string" and len(vals) == 1:
        v = vals[0]
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    if name == "bool" and len(vals) == 1:
        if vals[0] in ("true", "false"):
            return vals[0] == "true"
        raise CelError(f"cannot convert {vals[0]!r} to bool")
    raise CelError(f"undeclared reference to '{name}' (in container '')")


def _method(target_ast, name, args, env):
    if name in ("all", "exists", "exists_one", "map", "filter"):
        target = evaluate(target_ast, env)
        if len(args) != 2 or args[0][0] != "var":
            raise CelError(f"invalid arguments to {name}() macro")
        var = args[0][1]
        items = list(target.keys()) if isinstance(target, dict) else target
        if not isinstance(items, list):
            raise CelError(f"no such overload: {_kind(target)}.{name}")
        results = []
        for it in items:
            results.append(evaluate(args[1], {**env, var: it}))
        if name == "map":
            return results
        if any(not isinstance(r, bool) for r in results):
            raise CelError(f"{name}() predicate must be bool")
        if name == "all":
            return all(results)
        if name == "exists":
            return any(results)
        if name == "exists_one":
            return sum(results) == 1
        return [it for it, r in zip(items, results) if r]
    target = evaluate(target_ast, env)
    vals = [evaluate(a, env) for a in args]
    if name == "size" and not vals:
        return _size(target)
    if isinstance(target, str):
        if name == "contains":
            return vals[0] in target
        if name == "startsWith":
            return target.startswith(vals[0])
        if name == "endsWith":
            return target.endswith(vals[0])
        if name == "matches":
            return re.search(vals[0], target) is not None
        if name == "lowerAscii":
            return target.lower()
        if name == "upperAscii":
            return target.upper()
        if name == "trim":
            return target.strip()
    raise CelError(f"found no matching overload for '{name}' applied to '{_kind(target)}'")


def run(src, env):
    """Compiles and evaluates; convenience for tests."""
    return evaluate(compile_rule(src), env)
