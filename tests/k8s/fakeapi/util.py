"""Shared helpers: API errors as metav1.Status, timestamps, label and field selectors."""

import datetime
import re


class ApiError(Exception):
    """An error the server answers with a metav1.Status body."""

    def __init__(self, code, reason, message, details=None, causes=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = causes

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt, name):
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt, name, message=None):
    msg = message or (f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object '
                      "has been modified; please apply your changes to the latest version and "
                      "try again")
    return ApiError(409, "Conflict", msg, {"name": name, "group": rt.group, "kind": rt.plural})


def invalid(rt, name, causes):
    """422 Invalid; causes: [(field, message)]."""
    parts = [f"{f}: {m}" if f else m for f, m in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{rt.kind_qualified} "{name}" is invalid: {joined}',
                    {"name": name, "group": rt.group, "kind": rt.kind},
                    [{"reason": "FieldValueInvalid", "message": m, "field": f}
                     for f, m in causes])


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def fmt_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso():
    return fmt_time(now())


def micro_now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    try:
        s = s.replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(s)
    except (ValueError, AttributeError):
        return None


def human_duration(seconds):
    """Kubernetes' HumanDuration (the AGE column)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if h < 24 * 365 * 2:
        return f"{d}d"
    y = d // 365
    if h < 24 * 365 * 8:
        return f"{y}y{d % 365}d" if d % 365 else f"{y}y"
    return f"{y}y"


def age(timestamp):
    t = parse_time(timestamp) if timestamp else None
    if not t:
        return "<unknown>"
    return human_duration((now() - t).total_seconds())


# ---------------------------------------------------------------- selectors

_REQ = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|"
                  r"\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_label_selector(s):
    """Returns a predicate over a labels dict. Raises ApiError(400) on a malformed selector."""
    reqs = []
    for part in _split_top(s or ""):
        m = _REQ.match(part)
        if not m:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        neg, key, op, val, setop, vals = m.groups()
        if neg and (op or setop):
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        if setop:
            reqs.append((key, setop, {v.strip() for v in vals.split(",") if v.strip()}))
        elif op:
            reqs.append((key, "!=" if op == "!=" else "=", val))
        else:
            reqs.append((key, "!" if neg else "exists", None))

    def match(labels):
        labels = labels or {}
        for key, op, val in reqs:
            have = key in labels
            if op == "=" and labels.get(key) != val:
                return False
            if op == "!=" and have and labels[key] == val:
                return False
            if op == "in" and (not have or labels[key] not in val):
                return False
            if op == "notin" and have and labels[key] in val:
                return False
            if op == "exists" and not have:
                return False
            if op == "!" and have:
                return False
        return True

    return match


def lookup_path(obj, dotted):
    cur = obj
    for p in dotted.split("."):
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def parse_field_selector(s):
    """`a.b=x,c!=y` over any dotted path (the real server supports a per-type subset)."""
    reqs = []
    for part in [p for p in (s or "").split(",") if p.strip()]:
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid field selector: {part!r}")
        reqs.append(m.groups())

    def match(obj):
        for path, op, val in reqs:
            have = lookup_path(obj, path)
            if have is None:
                have = ""
            else:
                have = str(have).lower() if isinstance(have, bool) else str(have)
            if (op == "!=") == (have == val):
                return False
        return True

    return match


def clone(obj):
    """Deep copy of a JSON-like value (much faster than copy.deepcopy)."""
    try:
        return _marshal.loads(_marshal.dumps(obj))
    except ValueError:
        return _copy.deepcopy(obj)


import copy as _copy  # noqa: E402
import marshal as _marshal  # noqa: E402
