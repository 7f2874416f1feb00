"""Patches and server-side apply field ownership.

JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (the parts kubectl
sends: lists of maps merged by key, `$patch: delete|replace`, `$setElementOrder`, `$retainKeys`,
`$deleteFromPrimitiveList`, finalizers merged as a set) and a simplified server-side apply.

Field-ownership model (simplified, documented in tests/k8s/README.md): a manager owns leaf
paths in FieldsV1 notation. Maps are walked key by key. Lists in custom resources follow the
CRD schema (`x-kubernetes-list-type` map/set, otherwise atomic). In built-ins, lists of maps
whose items all carry the list's key (`name`; `uid` for ownerReferences, `type` for
conditions, `mountPath` for volumeMounts, `containerPort`/`port` for ports) are walked per item
(`k:{...}` plus `.` for the item itself), `metadata.finalizers` is a set (`v:...`), and any
other list is one atomic leaf.
"""

import json

from .util import ApiError, bad_request, clone

# ------------------------------------------------------------------ list keys

_KEY_BY_FIELD = {"ownerReferences": "uid", "volumeMounts": "mountPath",
                 "conditions": "type", "volumeDevices": "devicePath"}
_SET_FIELDS = {"finalizers"}


def list_key(field, items):
    """The merge key of a list of maps, or None for an atomic list."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    candidates = [_KEY_BY_FIELD[field]] if field in _KEY_BY_FIELD else []
    candidates += ["containerPort", "port", "name"] if field == "ports" else ["name"]
    for k in candidates:
        if all(k in i for i in items):
            return k
    return None


def _fmt_key(key, val):
    return "k:" + json.dumps({key: val}, separators=(",", ":"))


# ------------------------------------------------------------------ merge patch

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    out = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ------------------------------------------------------------------ strategic merge patch

def strategic_merge(target, patch, field=""):
    if not isinstance(patch, dict):
        return clone(patch)
    if not isinstance(target, dict):
        target = {}
    if patch.get("$patch") == "replace":
        p = {k: v for k, v in patch.items() if k != "$patch"}
        return clone(p)
    if patch.get("$patch") == "delete":
        return None
    out = clone(target)
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [x for x in out[name] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _strategic_list(k, out.get(k), v)
        elif isinstance(v, dict):
            r = strategic_merge(out.get(k), v, k)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        else:
            out[k] = clone(v)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _strategic_list(field, cur, patch):
    if field in _SET_FIELDS:
        cur = list(cur or [])
        return cur + [x for x in patch if x not in cur]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    real = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    key = list_key(field, [i for i in patch if isinstance(i, dict)] + list(cur or []))
    if not key or not isinstance(cur, list):
        return clone(real)
    out = clone(cur)
    for item in patch:
        idx = next((n for n, o in enumerate(out) if o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


# ------------------------------------------------------------------ JSON patch

def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            try:
                cur = cur[int(p)]
            except (ValueError, IndexError):
                raise ApiError(422, "Invalid", f"jsonpatch: index {p} out of range")
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(422, "Invalid", f"jsonpatch: missing path element {p!r}")
    return cur


def json_patch(doc, ops):
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc = clone(doc)
    for op in ops:
        kind = op.get("op")
        parts = _ptr(op.get("path", ""))
        if kind in ("add", "replace", "test", "remove"):
            parent = _walk(doc, parts[:-1]) if parts else None
            last = parts[-1] if parts else None
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise ApiError(422, "Invalid", f"jsonpatch: test failed at {op.get('path')}")
        elif kind in ("add", "replace"):
            val = clone(op.get("value"))
            if not parts:
                doc = val
            elif isinstance(parent, list):
                i = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(i, val)
                else:
                    parent[i] = val
            elif isinstance(parent, dict):
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"jsonpatch: replace of missing {op['path']}")
                parent[last] = val
            else:
                raise ApiError(422, "Invalid", f"jsonpatch: bad path {op.get('path')}")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif isinstance(parent, dict) and last in parent:
                del parent[last]
            else:
                raise ApiError(422, "Invalid", f"jsonpatch: remove of missing {op.get('path')}")
        elif kind in ("move", "copy"):
            src = _ptr(op.get("from", ""))
            val = clone(_walk(doc, src))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": op["path"], "value": val}])
        else:
            raise bad_request(f"unknown json patch op {kind!r}")
    return doc


# ------------------------------------------------------------------ field sets

# Metadata that nobody owns.
_META_SKIP = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
              "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink",
              "generateName"}


def _list_kind(field, items, sch):
    """("set"|"map"|"atomic", key) of a list. sch None: built-in heuristics; otherwise the CRD
    schema node of the list ({} when unknown, e.g. under preserve-unknown-fields): lists are
    atomic unless `x-kubernetes-list-type` says set or map (first map key only)."""
    if sch is None:
        if field in _SET_FIELDS:
            return "set", None
        key = list_key(field, items)
        return ("map", key) if key else ("atomic", None)
    lt = sch.get("x-kubernetes-list-type")
    if lt == "set":
        return "set", None
    keys = sch.get("x-kubernetes-list-map-keys") or []
    if lt == "map" and keys and all(isinstance(i, dict) and keys[0] in i for i in items):
        return "map", keys[0]
    return "atomic", None


def _child(sch, key):
    if sch is None:
        return None
    props = sch.get("properties") or {}
    if key in props:
        return props[key]
    addl = sch.get("additionalProperties")
    return addl if isinstance(addl, dict) else {}


def _items(sch):
    return None if sch is None else (sch.get("items") or {})


def field_paths(obj, scope="main", schema=None):
    """Set of owned leaf paths (tuples of FieldsV1 tokens) of an object.

    scope "main": everything but status (for types with a status subresource);
    "status": only status; "all": everything. schema: a CRD's structural schema (list types
    come from it), None for built-ins."""
    out = set()
    for k, v in (obj or {}).items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "status" and scope == "main":
            continue
        if k != "status" and k != "metadata" and scope == "status":
            continue
        if k == "metadata":
            if scope == "status":
                continue
            for mk, mv in (v or {}).items():
                if mk not in _META_SKIP:
                    _paths(mv, ("f:metadata", "f:" + mk), mk, out, None)
            continue
        _paths(v, ("f:" + k,), k, out, _child(schema, k))
    return out


def changed_paths(old, new, scope="main", schema=None):
    """(changed, removed): the leaf paths of `new` that are not in `old` or hold another value
    there, and the paths of `old` gone from `new` (as field_paths would give them, compared
    path by path), found by descending only into the parts of the two objects that differ."""
    changed, removed = set(), set()
    if not old:
        return field_paths(new, scope, schema), changed
    for k in list(new) + [k for k in old if k not in new]:
        if k in ("apiVersion", "kind"):
            continue
        if k == "status" and scope == "main":
            continue
        if k != "status" and k != "metadata" and scope == "status":
            continue
        a, b = old.get(k, _NOTHING), new.get(k, _NOTHING)
        if a == b:
            continue
        if k == "metadata":
            if scope == "status":
                continue
            a = a if isinstance(a, dict) else {}
            b = b if isinstance(b, dict) else {}
            for mk in list(b) + [mk for mk in a if mk not in b]:
                if mk not in _META_SKIP:
                    _diff(a.get(mk, _NOTHING), b.get(mk, _NOTHING), ("f:metadata", "f:" + mk),
                          mk, None, old, new, changed, removed)
            continue
        _diff(a, b, ("f:" + k,), k, _child(schema, k), old, new, changed, removed)
    return changed, removed


def _diff(a, b, prefix, field, sch, old, new, changed, removed):
    if a == b:
        return
    if isinstance(a, dict) and a and isinstance(b, dict) and b:
        for k in list(b) + [k for k in a if k not in b]:
            _diff(a.get(k, _NOTHING), b.get(k, _NOTHING), prefix + ("f:" + k,), k,
                  _child(sch, k), old, new, changed, removed)
        return
    pa, pb = {}, {}
    if a is not _NOTHING:
        _path_values(a, prefix, field, pa, sch)
    if b is not _NOTHING:
        _path_values(b, prefix, field, pb, sch)
    changed.update(p for p, v in pb.items() if p not in pa or pa[p] != v)
    removed.update(p for p in pa if p not in pb)


def _path_values(v, prefix, field, out, sch=None):
    """_paths, with the value get_at would find at each path (the first item of a key)."""
    if isinstance(v, dict) and v:
        for k, sub in v.items():
            _path_values(sub, prefix + ("f:" + k,), k, out, _child(sch, k))
        return
    kind, key = _list_kind(field, v, sch) if isinstance(v, list) and v else ("leaf", None)
    if kind == "set":
        for x in v:
            out.setdefault(prefix + ("v:" + json.dumps(x),), x)
    elif kind == "map":
        for item in v:
            p = prefix + (_fmt_key(key, item[key]),)
            if p + (".",) in out:
                # a second item with the same key: its fields are looked up in the first
                first = out[p + (".",)]
                for k, sub in item.items():
                    extra = {}
                    _path_values(sub, p + ("f:" + k,), k, extra, _child(_items(sch), k))
                    for q in extra:
                        out.setdefault(q, get_at(first, q[len(p):]) if q[len(p):] else first)
                continue
            out[p + (".",)] = item
            for k, sub in item.items():
                _path_values(sub, p + ("f:" + k,), k, out, _child(_items(sch), k))
    else:
        out.setdefault(prefix, v)


def _paths(v, prefix, field, out, sch=None):
    if isinstance(v, dict) and v:
        for k, sub in v.items():
            _paths(sub, prefix + ("f:" + k,), k, out, _child(sch, k))
        return
    kind, key = _list_kind(field, v, sch) if isinstance(v, list) and v else ("leaf", None)
    if kind == "set":
        for x in v:
            out.add(prefix + ("v:" + json.dumps(x),))
    elif kind == "map":
        for item in v:
            p = prefix + (_fmt_key(key, item[key]),)
            out.add(p + (".",))
            for k, sub in item.items():
                _paths(sub, p + ("f:" + k,), k, out, _child(_items(sch), k))
    else:
        out.add(prefix)


_NOTHING = object()


def get_at(obj, path):
    cur = obj
    for tok in path:
        if tok == ".":
            return cur
        kind, _, rest = tok.partition(":")
        if kind == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _NOTHING
            cur = cur[rest]
        elif kind == "k":
            kv = json.loads(rest)
            (key, val), = kv.items()
            if not isinstance(cur, list):
                return _NOTHING
            cur = next((i for i in cur if isinstance(i, dict) and i.get(key) == val), _NOTHING)
            if cur is _NOTHING:
                return cur
        elif kind == "v":
            val = json.loads(rest)
            return val if isinstance(cur, list) and val in cur else _NOTHING
    return cur


def remove_at(obj, path):
    """Removes the field at path; drops maps left empty on the way back up."""
    if not path:
        return
    chain = [obj]
    cur = obj
    for tok in path[:-1]:
        kind, _, rest = tok.partition(":")
        if kind == "f" and isinstance(cur, dict) and rest in cur:
            cur = cur[rest]
        elif kind == "k" and isinstance(cur, list):
            (key, val), = json.loads(rest).items()
            nxt = next((i for i in cur if isinstance(i, dict) and i.get(key) == val), None)
            if nxt is None:
                return
            if path[len(chain)] == ".":
                cur.remove(nxt)
                return
            cur = nxt
        else:
            return
        chain.append(cur)
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(cur, dict):
        cur.pop(rest, None)
    elif kind == "v" and isinstance(cur, list):
        val = json.loads(rest)
        if val in cur:
            cur.remove(val)
    elif kind == "k" and isinstance(cur, list):
        (key, val), = json.loads(rest).items()
        cur[:] = [i for i in cur if not (isinstance(i, dict) and i.get(key) == val)]
    # drop containers emptied by the removal (not the top-level ones)
    for depth in range(len(chain) - 1, 1, -1):
        node = chain[depth]
        if node in ({}, []):
            parent = chain[depth - 1]
            kind, _, rest = path[depth - 1].partition(":")
            if kind == "f" and isinstance(parent, dict):
                parent.pop(rest, None)
        else:
            break


def to_fieldsv1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for tok in p:
            cur = cur.setdefault(tok, {})
    return root


def from_fieldsv1(tree, prefix=()):
    out = set()
    for tok, sub in (tree or {}).items():
        p = prefix + (tok,)
        if sub:
            if "." in sub and tok.startswith("k:"):
                out.add(p + (".",))
            out |= from_fieldsv1({k: v for k, v in sub.items() if k != "."}, p)
        elif tok != ".":
            out.add(p)
    return out


def path_str(path):
    """Human form used in conflict messages: .spec.containers[name="x"].image"""
    s = ""
    for tok in path:
        kind, _, rest = tok.partition(":")
        if kind == "f":
            s += "." + rest
        elif kind == "k":
            (k, v), = json.loads(rest).items()
            s += f"[{k}={json.dumps(v)}]"
        elif kind == "v":
            s += f"[{rest}]"
    return s


# ------------------------------------------------------------------ apply merge

def apply_merge(live, applied, field="", sch=None):
    if isinstance(applied, dict):
        out = clone(live) if isinstance(live, dict) else {}
        for k, v in applied.items():
            out[k] = apply_merge(out.get(k), v, k, _child(sch, k))
        return out
    if isinstance(applied, list) and applied:
        kind, key = _list_kind(field, applied, sch)
        if kind == "set" and isinstance(live, list):
            return list(live) + [x for x in applied if x not in live]
        if kind == "map" and isinstance(live, list) and all(isinstance(i, dict) for i in live):
            out = clone(live)
            for item in applied:
                idx = next((n for n, o in enumerate(out) if o.get(key) == item.get(key)), None)
                if idx is None:
                    out.append(clone(item))
                else:
                    out[idx] = apply_merge(out[idx], item, "", _items(sch))
            return out
    return clone(applied)


# ------------------------------------------------------------------ managedFields bookkeeping

class _Set:
    """One managedFields entry: its owned paths (parsed from FieldsV1 only when needed) and,
    while untouched, the entry it came from (reused as is by to_list)."""

    __slots__ = ("entry", "_paths", "apiVersion", "time")

    def __init__(self, paths=None, api_version="", time=None, entry=None):
        self.entry, self._paths, self.apiVersion, self.time = entry, paths, api_version, time

    @property
    def paths(self):
        if self._paths is None:
            self._paths = from_fieldsv1(self.entry.get("fieldsV1"))
        return self._paths

    @paths.setter
    def paths(self, value):
        self._paths = value
        self.entry = None

    def discard(self, paths):
        """Removes paths; the entry is rewritten only if one was owned (looked up in its
        FieldsV1 tree while it is not parsed)."""
        if not paths:
            return
        if self._paths is None:
            tree = self.entry.get("fieldsV1") or {}
            if not any(_tree_has(tree, p) for p in paths):
                return
        if not self.paths.isdisjoint(paths):
            self.paths = self.paths - paths


def _tree_has(tree, path):
    """path in from_fieldsv1(tree), without building that set."""
    cur = tree
    for tok in path[:-1]:
        cur = cur.get(tok) if isinstance(cur, dict) else None
        if cur is None:
            return False
    if not isinstance(cur, dict):
        return False
    last = path[-1]
    if last == ".":
        return len(path) >= 2 and path[-2].startswith("k:") and "." in cur
    sub = cur.get(last)
    return isinstance(sub, dict) and not sub


class Managed:
    """managedFields as {(manager, operation, subresource): _Set}."""

    def __init__(self, entries=None):
        self.sets = {}
        for e in entries or []:
            k = (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", ""))
            self.sets[k] = _Set(None, e.get("apiVersion", ""), e.get("time"), e)

    def to_list(self):
        out = []
        for (mgr, op, sub), v in self.sets.items():
            if v.entry is not None and v.entry.get("fieldsV1") and \
                    v.entry.get("time") == v.time and v.entry.get("apiVersion") == v.apiVersion:
                out.append(v.entry)
                continue
            if not v.paths:
                continue
            e = {"manager": mgr, "operation": op, "apiVersion": v.apiVersion,
                 "time": v.time, "fieldsType": "FieldsV1",
                 "fieldsV1": to_fieldsv1(v.paths)}
            if sub:
                e["subresource"] = sub
            out.append(e)
        return out

    def record_update(self, manager, api_version, sub, old, new, now, scope, schema=None):
        """An Update (create/PUT/patch) by `manager`: it takes the fields it changed."""
        changed, removed = changed_paths(old, new, scope, schema)
        if not changed and not removed:
            return
        for k, v in self.sets.items():
            v.discard(changed | removed)
        key = (manager, "Update", sub)
        ent = self.sets.get(key)
        if ent is None:
            ent = self.sets[key] = _Set(set(), api_version, now)
        ent.paths = ent.paths | changed
        ent.apiVersion = api_version
        ent.time = now

    def apply(self, manager, api_version, sub, live, applied, force, now, scope, schema=None):
        """Server-side apply. Returns the merged object. Raises ApiError(409) on conflicts."""
        applied_p = field_paths(applied, scope, schema)
        conflicts = {}
        for (mgr, op, s), v in self.sets.items():
            if mgr == manager and op == "Apply":
                continue
            for p in applied_p & v.paths:
                if p[-1] == ".":
                    continue
                if live is not None and get_at(live, p) != get_at(applied, p):
                    conflicts.setdefault((mgr, v.apiVersion), []).append(p)
        if conflicts and not force:
            n = sum(len(v) for v in conflicts.values())
            causes, lines = [], []
            for (mgr, av), paths in conflicts.items():
                for p in sorted(paths):
                    causes.append({"reason": "FieldManagerConflict",
                                   "message": f'conflict with "{mgr}" using {av}',
                                   "field": path_str(p)})
                    lines.append((mgr, av, path_str(p)))
            if n == 1:
                mgr, av, f = lines[0]
                msg = f'Apply failed with 1 conflict: conflict with "{mgr}" using {av}: {f}'
            else:
                by = {}
                for mgr, av, f in lines:
                    by.setdefault((mgr, av), []).append(f)
                chunks = [f'conflicts with "{m}" using {a}:\n' + "\n".join("- " + f for f in fs)
                          for (m, a), fs in by.items()]
                msg = f"Apply failed with {n} conflicts: " + "\n".join(chunks)
            raise ApiError(409, "Conflict", msg, causes=causes)
        for (mgr, _av), paths in conflicts.items():  # force: take them over
            for (m, op, s), v in self.sets.items():
                if m == mgr:
                    v.discard(set(paths))
        key = (manager, "Apply", sub)
        prev = self.sets[key].paths if key in self.sets else set()
        merged = apply_merge(live or {}, {k: v for k, v in applied.items() if k != "metadata"},
                             "", schema)
        if "metadata" in applied:
            merged["metadata"] = apply_merge((live or {}).get("metadata"), applied["metadata"])
        others = set()
        for k, v in self.sets.items():
            if k != key:
                others |= v.paths
        # whole list items ("." paths) before their fields, parents before children
        for p in sorted(prev - applied_p, key=lambda p: (len(p) - (p[-1] == "."), p)):
            if p not in others and not (p[-1] == "." and any(
                    o[:len(p) - 1] == p[:-1] for o in others)):
                remove_at(merged, p)
        self.sets[key] = _Set(applied_p, api_version, now)
        return merged

    def strip_times(self):
        return sorted((k, sorted(v.paths), v.apiVersion) for k, v in self.sets.items()
                      if v.paths)
