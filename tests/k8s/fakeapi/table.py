"""Server-side Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).

Custom resources use their CRD's additionalPrinterColumns (JSONPath subset: `.a.b`, `[n]`,
`[*]`, `[?(@.k=="v")]`, optional `{...}` braces); built-ins get the usual kubectl columns.
"""

import json
import re

from .util import age, parse_time

_SEG = re.compile(r"""\.([A-Za-z0-9_\-$/]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*(==|!=)\s*
                      (?:"([^"]*)"|'([^']*)'|([^)\s]*))\s*\)\]|\['([^']+)'\]""", re.X)


def jsonpath(obj, path):
    """All values a (subset) JSONPath expression selects."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1]
    if p.startswith("$"):
        p = p[1:]
    cur = [obj]
    pos = 0
    while pos < len(p):
        m = _SEG.match(p, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {p[pos:]!r}")
        pos = m.end()
        field, idx, fkey, fop, v1, v2, v3, quoted = m.groups()
        nxt = []
        for c in cur:
            if field is not None or quoted is not None:
                k = field if field is not None else quoted
                if isinstance(c, dict) and k in c:
                    nxt.append(c[k])
            elif idx is not None:
                if isinstance(c, list):
                    if idx == "*":
                        nxt.extend(c)
                    elif int(idx) < len(c):
                        nxt.append(c[int(idx)])
                elif isinstance(c, dict) and idx == "*":
                    nxt.extend(c.values())
            elif fkey is not None:
                want = v1 if v1 is not None else (v2 if v2 is not None else v3)
                for it in c if isinstance(c, list) else []:
                    have = it
                    for part in fkey.split("."):
                        have = have.get(part) if isinstance(have, dict) else None
                    hs = have if isinstance(have, str) else json.dumps(have)
                    if (hs == want) == (fop == "=="):
                        nxt.append(it)
        cur = nxt
    return cur


def _cell(value, ctype):
    if value is None:
        return None
    if ctype == "date":
        return age(value) if parse_time(value) else value
    if ctype == "integer":
        return value if isinstance(value, int) else None
    if ctype == "number":
        return value if isinstance(value, (int, float)) else None
    if ctype == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _col(name, ctype="string", priority=0, desc="", fmt=""):
    c = {"name": name, "type": ctype, "format": fmt, "description": desc, "priority": priority}
    return c


def _ready_containers(pod):
    cs = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for c in cs if c.get('ready'))}/{total}"


def _pod_status(pod):
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    st = pod.get("status") or {}
    reason = st.get("phase", "Pending")
    for c in st.get("containerStatuses") or []:
        w = (c.get("state") or {}).get("waiting")
        if w and w.get("reason"):
            reason = w["reason"]
    return reason


def _builtin(rt):
    """(columns, row function) for a built-in type."""
    p = rt.plural
    md = lambda o: o["metadata"]  # noqa: E731
    cage = lambda o: age(md(o).get("creationTimestamp"))  # noqa: E731
    name_col = _col("Name", fmt="name")
    if p == "pods":
        return ([name_col, _col("Ready"), _col("Status"), _col("Restarts", "string"),
                 _col("Age"), _col("IP", priority=1), _col("Node", priority=1)],
                lambda o: [md(o)["name"], _ready_containers(o), _pod_status(o),
                           str(sum(c.get("restartCount", 0) for c in (o.get("status") or {}).get(
                               "containerStatuses") or [])), cage(o),
                           (o.get("status") or {}).get("podIP", "<none>"),
                           (o.get("spec") or {}).get("nodeName", "<none>")])
    if p == "deployments":
        return ([name_col, _col("Ready"), _col("Up-to-date", "integer"),
                 _col("Available", "integer"), _col("Age")],
                lambda o: [md(o)["name"], f"{(o.get('status') or {}).get('readyReplicas', 0)}/"
                           f"{(o.get('spec') or {}).get('replicas', 0)}",
                           (o.get("status") or {}).get("updatedReplicas", 0),
                           (o.get("status") or {}).get("availableReplicas", 0), cage(o)])
    if p == "statefulsets":
        return ([name_col, _col("Ready"), _col("Age")],
                lambda o: [md(o)["name"], f"{(o.get('status') or {}).get('readyReplicas', 0)}/"
                           f"{(o.get('spec') or {}).get('replicas', 0)}", cage(o)])
    if p == "horizontalpodautoscalers":
        def hpa_row(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            ref = spec.get("scaleTargetRef") or {}
            targets = []
            cur = {json.dumps(m.get("external", {}).get("metric", {}).get("name")): m
                   for m in st.get("currentMetrics") or []}
            for m in spec.get("metrics") or []:
                if m.get("type") == "External":
                    t = (m["external"].get("target") or {})
                    tv = t.get("averageValue") or t.get("value") or "?"
                    c = cur.get(json.dumps(m["external"].get("metric", {}).get("name")))
                    cv = (((c or {}).get("external") or {}).get("current") or {})
                    cv = cv.get("averageValue") or cv.get("value") or "<unknown>"
                    targets.append(f"{cv}/{tv}" + (" (avg)" if "averageValue" in t else ""))
            return [md(o)["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}",
                    ", ".join(targets) or "<none>", spec.get("minReplicas", 1),
                    spec.get("maxReplicas", 0), st.get("currentReplicas", 0), cage(o)]
        return ([name_col, _col("Reference"), _col("Targets"), _col("MinPods", "integer"),
                 _col("MaxPods", "integer"), _col("Replicas", "integer"), _col("Age")], hpa_row)
    if p == "namespaces":
        return ([name_col, _col("Status"), _col("Age")],
                lambda o: [md(o)["name"], (o.get("status") or {}).get("phase", ""), cage(o)])
    if p == "events":
        def ev_row(o):
            io = o.get("involvedObject") or {}
            last = o.get("lastTimestamp") or o.get("eventTime") or md(o).get("creationTimestamp")
            return [age(last), o.get("type", ""), o.get("reason", ""),
                    f"{(io.get('kind') or '').lower()}/{io.get('name', '')}", o.get("message", "")]
        return ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
                 _col("Message")], ev_row)
    if p == "scaledobjects":
        def so_row(o):
            spec, st = o.get("spec") or {}, o.get("status") or {}
            conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
            ref = spec.get("scaleTargetRef") or {}
            return [md(o)["name"], ref.get("kind", "Deployment"), ref.get("name", ""),
                    spec.get("minReplicaCount"), spec.get("maxReplicaCount"),
                    conds.get("Ready", "Unknown"), conds.get("Active", "Unknown"), cage(o)]
        return ([name_col, _col("ScaleTargetKind"), _col("ScaleTargetName"),
                 _col("Min", "integer"), _col("Max", "integer"), _col("Ready"), _col("Active"),
                 _col("Age")], so_row)
    if p in ("configmaps", "secrets"):
        extra = [_col("Type")] if p == "secrets" else []
        return ([name_col] + extra + [_col("Data", "integer"), _col("Age")],
                lambda o: [md(o)["name"]] + ([o.get("type", "Opaque")] if extra else []) +
                [len(o.get("data") or {}) + len(o.get("binaryData") or o.get("stringData") or {}),
                 cage(o)])
    if p == "leases":
        return ([name_col, _col("Holder"), _col("Age")],
                lambda o: [md(o)["name"], (o.get("spec") or {}).get("holderIdentity", ""),
                           cage(o)])
    if p == "customresourcedefinitions":
        return ([name_col, _col("Created At", "date")],
                lambda o: [md(o)["name"], md(o).get("creationTimestamp")])
    return ([name_col, _col("Age")], lambda o: [md(o)["name"], cage(o)])


def _custom(rt):
    cols = [_col("Name", fmt="name", desc="Name must be unique within a namespace.")]
    specs = []
    for c in rt.printer_columns or []:
        cols.append(_col(c["name"], c.get("type", "string"), c.get("priority", 0),
                         c.get("description", ""), c.get("format", "")))
        specs.append((c.get("jsonPath", ""), c.get("type", "string")))

    def row(o):
        cells = [o["metadata"]["name"]]
        for path, ctype in specs:
            try:
                vals = jsonpath(o, path)
            except ValueError:
                vals = []
            cells.append(_cell(vals[0], ctype) if vals else None)
        return cells

    return cols, row


def to_table(rt, items, rv, include_object="Metadata", cont=None):
    cols, row = _custom(rt) if rt.schema is not None else _builtin(rt)
    rows = []
    for o in items:
        if include_object == "None":
            obj = None
        elif include_object == "Object":
            obj = o
        else:
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": {k: v for k, v in o["metadata"].items() if k != "managedFields"}}
        r = {"cells": row(o), "object": obj}
        rows.append(r)
    meta = {"resourceVersion": str(rv)}
    if cont:
        meta["continue"] = cont
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            "columnDefinitions": cols, "rows": rows}
