"""The object store: one global resourceVersion counter, a bounded event log for watches,
optimistic concurrency, generation, status subresource, finalizers, garbage collection,
server-side apply and the CRD structural schema.

Stored objects are never mutated in place: every write stores a fresh dict, so events and
readers can share them without copying.
"""

import base64
import json
import random
import re
import string
import threading
import uuid

from . import patch as P
from . import schema as S
from .resources import CrdError, types_from_crd
from .util import (ApiError, already_exists, bad_request, clone, conflict, invalid,
                   not_found, now_iso, parse_field_selector, parse_label_selector)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_SPEC = ("metadata", "status", "apiVersion", "kind")


class Ctx:
    """Per-request options: field manager, field validation, dry run."""

    def __init__(self, manager="unknown", field_validation="Warn", force=False, dry_run=False,
                 explicit_manager=True):
        self.manager = manager
        self.explicit_manager = explicit_manager
        self.field_validation = field_validation or "Warn"
        self.force = force
        self.dry_run = dry_run
        self.warnings = []


class Event:
    __slots__ = ("rv", "key", "ns", "type", "obj", "old", "line")

    def __init__(self, rv, key, ns, etype, obj, old):
        self.rv, self.key, self.ns, self.type, self.obj, self.old = rv, key, ns, etype, obj, old
        self.line = None

    def encoded(self, etype=None):
        if etype is None or etype == self.type:
            if self.line is None:
                self.line = (json.dumps({"type": self.type, "object": self.obj}) + "\n").encode()
            return self.line
        return (json.dumps({"type": etype, "object": self.obj}) + "\n").encode()


class Store:
    def __init__(self, registry, window=10000):
        self.registry = registry
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.objects = {}        # (group, plural) -> {(ns, name): obj}
        self.by_uid = {}         # uid -> ((group, plural), ns, name)
        self.by_owner = {}       # owner uid -> {((group, plural), ns, name)}
        self.events = []
        self.event_rvs = []
        self.window = window
        self.oldest_rv = 0       # a watch from rv < oldest_rv gets 410 Gone
        self.watch_epoch = 0     # bumped to expire running watches (test hook)
        self.listeners = []      # fn(event) called after each committed change (under lock)
        self.writes = []         # audit log of mutating requests
        self.write_count = 0
        for ns in ("default", "kube-system", "kube-public"):
            self.create(self.registry.get("", "v1", "namespaces"), "",
                        {"metadata": {"name": ns}}, Ctx("fakeapi"))

    # ------------------------------------------------------------ helpers

    def _bucket(self, rt):
        return self.objects.setdefault((rt.group, rt.plural), {})

    def _put(self, rt, key, new, old=None):
        """Stores `new` under key and keeps the uid and owner indexes."""
        self._bucket(rt)[key] = new
        ref = ((rt.group, rt.plural), key[0], key[1])
        self.by_uid[new["metadata"]["uid"]] = ref
        old_owners = {r.get("uid") for r in (old or {}).get("metadata", {}).get(
            "ownerReferences") or []}
        new_owners = {r.get("uid") for r in new["metadata"].get("ownerReferences") or []}
        for u in old_owners - new_owners:
            self.by_owner.get(u, set()).discard(ref)
        for u in new_owners - old_owners:
            self.by_owner.setdefault(u, set()).add(ref)

    def _drop(self, rt, key, old):
        self._bucket(rt).pop(key, None)
        ref = ((rt.group, rt.plural), key[0], key[1])
        self.by_uid.pop(old["metadata"]["uid"], None)
        for r in old["metadata"].get("ownerReferences") or []:
            deps = self.by_owner.get(r.get("uid"))
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self.by_owner[r.get("uid")]

    def dependents(self, uid, group=None, plural=None):
        """Objects with an ownerReference to uid (optionally of one resource)."""
        with self.lock:
            out = []
            for (key, ns, name) in sorted(self.by_owner.get(uid, ())):
                if group is not None and key != (group, plural):
                    continue
                o = self.objects.get(key, {}).get((ns, name))
                if o is not None:
                    out.append(o)
            return out

    def _next_rv(self):
        self.rv += 1
        return self.rv

    def _emit(self, rt, ns, etype, obj, old=None):
        ev = Event(int(obj["metadata"]["resourceVersion"]), (rt.group, rt.plural), ns, etype,
                   obj, old)
        self.events.append(ev)
        self.event_rvs.append(ev.rv)
        if len(self.events) > self.window:
            drop = len(self.events) - self.window
            self.oldest_rv = self.event_rvs[drop - 1]
            del self.events[:drop]
            del self.event_rvs[:drop]
        for fn in list(self.listeners):
            try:
                fn(ev)
            except Exception:  # a listener must not break the store
                pass
        self.cond.notify_all()

    def _audit(self, verb, rt, ns, name, ctx, noop, sub=""):
        self.write_count += 0 if noop else 1
        self.writes.append({"verb": verb, "resource": rt.plural, "group": rt.group,
                            "namespace": ns, "name": name, "manager": ctx.manager,
                            "subresource": sub, "noop": noop, "rv": self.rv})
        if len(self.writes) > 20000:
            del self.writes[:10000]

    def compact(self, expire_watches=False):
        """Test hook: forget every retained event, as etcd compaction does. With
        expire_watches, running watches also end with an ERROR event (410 Expired), as when
        a watch falls behind a compaction."""
        with self.lock:
            self.events.clear()
            self.event_rvs.clear()
            self.oldest_rv = self.rv
            if expire_watches:
                self.watch_epoch += 1
            self.cond.notify_all()

    def set_window(self, n):
        with self.lock:
            self.window = max(1, int(n))

    # ------------------------------------------------------------ reads

    def get(self, rt, ns, name):
        with self.lock:
            obj = self._bucket(rt).get((ns if rt.namespaced else "", name))
            if obj is None:
                raise not_found(rt, name)
            return obj

    def list(self, rt, ns="", label_selector="", field_selector=""):
        lsel = parse_label_selector(label_selector)
        fsel = parse_field_selector(field_selector)
        with self.lock:
            items = [o for (ons, _), o in sorted(self._bucket(rt).items())
                     if (not ns or ons == ns) and lsel(o["metadata"].get("labels"))
                     and fsel(o)]
            return items, self.rv

    def exists_uid(self, uid):
        with self.lock:
            return uid in self.by_uid

    # ------------------------------------------------------------ validation of built-ins

    def _validate_meta(self, rt, obj):
        md = obj.get("metadata") or {}
        name = md.get("name", "")
        causes = []
        rx = _DNS_LABEL if rt.plural == "namespaces" else _DNS_SUBDOMAIN
        if rt.plural not in ("events",) and (not rx.match(name) or len(name) > 253):
            kind = "RFC 1123 label" if rx is _DNS_LABEL else "RFC 1123 subdomain"
            causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase {kind} must '
                           "consist of lower case alphanumeric characters, '-' or '.', and must "
                           "start and end with an alphanumeric character"))
        for k, v in (md.get("labels") or {}).items():
            if not isinstance(v, str) or len(v) > 63 or (v and not re.match(
                    r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", v)):
                causes.append((f"metadata.labels", f'Invalid value: "{v}": a valid label must be '
                               "an empty string or consist of alphanumeric characters, '-', '_' "
                               "or '.', and must start and end with an alphanumeric character"))
        for k, v in (md.get("annotations") or {}).items():
            if not isinstance(v, str):
                causes.append(("metadata.annotations", f"Invalid value: annotation {k} must be a "
                               "string"))
        return causes

    def _builtin_rules(self, rt, obj, old):
        """Defaulting and validation a real API server does for the built-ins we serve."""
        causes = []
        spec = obj.get("spec")
        if rt.group == "apps" and rt.plural in ("deployments", "statefulsets"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            if rt.plural == "deployments":
                spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {
                    "maxUnavailable": "25%", "maxSurge": "25%"}})
                spec.setdefault("progressDeadlineSeconds", 600)
            else:
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                                   "rollingUpdate": {"partition": 0}})
            spec.setdefault("revisionHistoryLimit", 10)
            sel = spec.get("selector")
            tl = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not isinstance(sel, dict) or not (sel.get("matchLabels") or
                                                 sel.get("matchExpressions")):
                causes.append(("spec.selector", "Required value"))
            elif not _selector_matches(sel, tl):
                causes.append(("spec.template.metadata.labels",
                               f"Invalid value: {json.dumps(tl)}: `selector` does not match "
                               "template `labels`"))
            if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
                causes.append(("spec.selector", f"Invalid value: {json.dumps(sel)}: field is "
                               "immutable"))
            if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
                causes.append(("spec.template.spec.containers", "Required value"))
            if isinstance(spec.get("replicas"), int) and spec["replicas"] < 0:
                causes.append(("spec.replicas", f"Invalid value: {spec['replicas']}: must be "
                               "greater than or equal to 0"))
        elif rt.plural == "pods" and not rt.group:
            cs = (spec or {}).get("containers") or []
            if not cs:
                causes.append(("spec.containers", "Required value"))
            for i, c in enumerate(cs):
                if not c.get("name"):
                    causes.append((f"spec.containers[{i}].name", "Required value"))
                if not c.get("image"):
                    causes.append((f"spec.containers[{i}].image", "Required value"))
            if old is not None and old.get("spec", {}).get("containers") is not None:
                o = [{k: v for k, v in c.items() if k != "image"}
                     for c in old["spec"]["containers"]]
                n = [{k: v for k, v in c.items() if k != "image"} for c in cs]
                if o != n:
                    causes.append(("spec", "Forbidden: pod updates may not change fields other "
                                   "than `spec.containers[*].image` and a few others"))
        elif rt.plural == "horizontalpodautoscalers":
            if not (spec or {}).get("scaleTargetRef"):
                causes.append(("spec.scaleTargetRef", "Required value"))
            if not isinstance((spec or {}).get("maxReplicas"), int):
                causes.append(("spec.maxReplicas", "Required value"))
        elif rt.plural == "scaledobjects":
            if not ((spec or {}).get("scaleTargetRef") or {}).get("name"):
                causes.append(("spec.scaleTargetRef.name", "Required value"))
            if not isinstance((spec or {}).get("triggers"), list):
                causes.append(("spec.triggers", "Required value"))
        elif rt.plural == "configmaps" or rt.plural == "secrets":
            if rt.plural == "secrets":
                if not obj.get("type"):
                    obj["type"] = "Opaque"
                if obj.get("stringData"):  # write-only convenience field, folded into data
                    data = obj.setdefault("data", {}) or {}
                    for k, v in obj.pop("stringData").items():
                        data[k] = base64.b64encode(str(v).encode()).decode()
                    obj["data"] = data
                obj.pop("stringData", None)
            for k in list((obj.get("data") or {}).keys()):
                if not re.match(r"^[-._a-zA-Z0-9]+$", k):
                    causes.append((f"data[{k}]", f'Invalid value: "{k}": a valid config key must '
                                   "consist of alphanumeric characters, '-', '_' or '.'"))
        elif rt.plural == "leases":
            pass
        return causes

    def _process_custom(self, rt, obj, old, ctx):
        if rt.schema is None:
            return obj
        out, unknown, errors = S.process(obj, rt.schema, old)
        if unknown:
            if ctx.field_validation == "Strict":
                fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise ApiError(400, "BadRequest",
                               f"{rt.kind} in version \"{rt.version}\" cannot be handled as a "
                               f"{rt.kind}: strict decoding error: {fields}")
            if ctx.field_validation == "Warn":
                ctx.warnings.extend(f'unknown field "{u}"' for u in unknown)
        if errors:
            raise invalid(rt, obj["metadata"].get("name", ""), [(f, m) for f, m, _ in errors])
        return out

    def _check(self, rt, obj, old, ctx):
        causes = self._validate_meta(rt, obj) + self._builtin_rules(rt, obj, old)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(obj["metadata"].get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or [])
            if added:
                causes.append(("metadata.finalizers", "Forbidden: no new finalizers can be "
                               "added if the object is being deleted, found new finalizers "
                               + json.dumps(sorted(added))))
        if causes:
            raise invalid(rt, obj["metadata"].get("name", ""), causes)
        obj = self._process_custom(rt, obj, old, ctx)
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io":
            try:
                types_from_crd(obj)
            except CrdError as e:
                raise invalid(rt, obj["metadata"].get("name", ""), [("", str(e))])
        return obj

    # ------------------------------------------------------------ create

    def create(self, rt, ns, body, ctx, managed_done=False):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not an object")
        with self.lock:
            obj = clone(body)
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            md = obj.setdefault("metadata", {})
            if not isinstance(md, dict):
                raise bad_request("metadata must be an object")
            if not md.get("name") and md.get("generateName"):
                md["name"] = md["generateName"] + "".join(
                    random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            if not md.get("name"):
                raise invalid(rt, "", [("metadata.name", "Required value: name or generateName "
                                        "is required")])
            if md.get("resourceVersion"):
                raise invalid(rt, md["name"], [("metadata.resourceVersion", "Invalid value: "
                              f"\"{md['resourceVersion']}\": must be empty on create")])
            if rt.namespaced:
                bns = md.get("namespace")
                if bns and ns and bns != ns:
                    raise bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
                ns = ns or bns or "default"
                md["namespace"] = ns
                nsobj = self._bucket(self.registry.get("", "v1", "namespaces")).get(("", ns))
                if nsobj is None:
                    raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                                   {"name": ns, "kind": "namespaces"})
                if nsobj["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden",
                                   f'{rt.qualified} "{md["name"]}" is forbidden: unable to '
                                   f"create new content in namespace {ns} because it is being "
                                   "terminated")
            else:
                ns = ""
                md.pop("namespace", None)
            key = (ns, md["name"])
            if key in self._bucket(rt):
                raise already_exists(rt, md["name"])
            if rt.has_status and rt.plural not in ("pods",):
                obj.pop("status", None)
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                md.pop(k, None)
            if rt.plural == "namespaces":
                obj["status"] = {"phase": "Active"}
                obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            if rt.plural == "pods":
                obj.setdefault("status", {"phase": "Pending"})
            obj = self._check(rt, obj, None, ctx)
            md = obj["metadata"]
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = now_iso()
            md["generation"] = 1
            if not managed_done:
                m = P.Managed()
                m.record_update(ctx.manager, rt.api_version, "", None, obj, now_iso(),
                                "all" if not rt.has_status else "main", rt.schema)
                md["managedFields"] = m.to_list()
            if ctx.dry_run:
                md["resourceVersion"] = str(self.rv)
                return obj
            md["resourceVersion"] = str(self._next_rv())
            if rt.plural == "customresourcedefinitions":
                obj = self._register_crd(obj)
            self._put(rt, key, obj)
            self._audit("create", rt, ns, md["name"], ctx, False)
            self._emit(rt, ns, "ADDED", obj)
            refs = md.get("ownerReferences") or []
            if refs and not any(r.get("uid") in self.by_uid for r in refs):
                # Like kube's garbage collector: a dependent whose owners are all gone (a
                # controller that read its owner just before the owner was deleted) is collected.
                self._delete_obj(rt, key, obj)
            return obj

    def _register_crd(self, crd):
        try:
            types = self.registry.add_crd(crd)
        except CrdError as e:
            raise invalid(self.registry.get("apiextensions.k8s.io", "v1",
                                            "customresourcedefinitions"),
                          crd["metadata"]["name"], [("", str(e))])
        names = crd["spec"]["names"]
        crd = clone(crd)
        t = now_iso()
        crd["status"] = {
            "acceptedNames": {k: v for k, v in names.items()},
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
            or [types[0].version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": t}]}
        return crd

    # ------------------------------------------------------------ update / patch

    def update(self, rt, ns, name, body, ctx, sub=""):
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not an object")
        with self.lock:
            old = self.get(rt, ns, name)
            bmd = body.get("metadata") or {}
            if bmd.get("name") and bmd["name"] != name:
                raise bad_request(f'the name of the object ({bmd["name"]}) does not match the '
                                  f"name on the URL ({name})")
            rv = bmd.get("resourceVersion")
            if not rv:
                raise invalid(rt, name, [("metadata.resourceVersion", "Invalid value: 0x0: must "
                                          "be specified for an update")])
            if str(rv) != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            return self._commit(rt, old, clone(body), ctx, sub, "update")

    def patch(self, rt, ns, name, ptype, body, ctx, sub=""):
        with self.lock:
            try:
                old = self.get(rt, ns, name)
            except ApiError:
                if ptype != "apply":
                    raise
                old = None
            if ptype == "apply":
                return self._apply(rt, ns, name, old, body, ctx, sub)
            if ptype == "merge":
                new = P.merge_patch(old, body)
            elif ptype == "strategic":
                if not rt.strategic:
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted "
                                   "media types include: application/json-patch+json, "
                                   "application/merge-patch+json, application/apply-patch+yaml")
                new = P.strategic_merge(old, body)
            elif ptype == "json":
                new = P.json_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {ptype}")
            if not isinstance(new, dict):
                raise bad_request("patch result is not an object")
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if ptype != "json" and isinstance(body, dict) and (body.get("metadata") or {}).get(
                    "resourceVersion") and str(rv) != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if ptype == "json" and str(rv) != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            return self._commit(rt, old, new, ctx, sub, "patch")

    def _apply(self, rt, ns, name, old, body, ctx, sub):
        if not isinstance(body, dict):
            raise bad_request("apply patch must be an object")
        if body.get("apiVersion") != rt.api_version or body.get("kind") != rt.kind:
            raise bad_request(f"apply patch apiVersion/kind must be {rt.api_version}/{rt.kind}, "
                              f"got {body.get('apiVersion')}/{body.get('kind')}")
        bmd = body.get("metadata") or {}
        if bmd.get("name") and bmd["name"] != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if not ctx.explicit_manager or not ctx.manager:
            raise bad_request("PATCH, application/apply-patch+yaml requests require "
                              "fieldManager")
        applied = clone(body)
        applied.setdefault("metadata", {})["name"] = name
        if rt.namespaced:
            applied["metadata"]["namespace"] = ns
        scope = "status" if sub == "status" else ("main" if rt.has_status else "all")
        if scope == "main":
            applied.pop("status", None)
        if old is not None and bmd.get("resourceVersion") and str(
                bmd["resourceVersion"]) != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        for k in ("resourceVersion", "uid", "creationTimestamp", "generation",
                  "managedFields"):
            applied["metadata"].pop(k, None)
        managed = P.Managed(old["metadata"].get("managedFields") if old else None)
        merged = managed.apply(ctx.manager, rt.api_version, sub, old, applied, ctx.force,
                               now_iso(), scope, rt.schema)
        merged["metadata"]["managedFields"] = managed.to_list()
        if old is None:
            if sub:
                raise not_found(rt, name)
            return self.create(rt, ns, merged, ctx, managed_done=True)
        return self._commit(rt, old, merged, ctx, sub, "apply", managed_done=True)

    def _commit(self, rt, old, new, ctx, sub, verb, managed_done=False):
        name = old["metadata"]["name"]
        ns = old["metadata"].get("namespace", "")
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if not isinstance(new.get("metadata"), dict):
            raise bad_request("metadata must be an object")
        if rt.has_status:
            if sub == "status":
                st = new.get("status")
                mf = new["metadata"].get("managedFields")
                new = clone(old)
                if st is None:
                    new.pop("status", None)
                else:
                    new["status"] = st
                if managed_done:
                    new["metadata"]["managedFields"] = mf
            else:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
        md = new["metadata"]
        omd = old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation"):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        md["resourceVersion"] = omd["resourceVersion"]
        if not managed_done:
            md["managedFields"] = omd.get("managedFields", [])
        new = self._check(rt, new, old, ctx)
        md = new["metadata"]
        spec_old = {k: v for k, v in old.items() if k not in _NOT_SPEC}
        spec_new = {k: v for k, v in new.items() if k not in _NOT_SPEC}
        if not rt.has_status:
            spec_old["status"] = old.get("status")
            spec_new["status"] = new.get("status")
        if spec_old != spec_new:
            md["generation"] = omd.get("generation", 1) + 1
        if not managed_done:
            m = P.Managed(omd.get("managedFields"))
            scope = "status" if sub == "status" else ("main" if rt.has_status else "all")
            m.record_update(ctx.manager, rt.api_version, sub, old, new, now_iso(), scope,
                            rt.schema)
            md["managedFields"] = m.to_list()
        if _same(old, new):
            self._audit(verb, rt, ns, name, ctx, True, sub)
            return old
        if ctx.dry_run:
            return new
        if rt.plural == "customresourcedefinitions" and rt.group == "apiextensions.k8s.io" \
                and sub != "status":
            status = self._register_crd(new)["status"]
            new["status"] = old.get("status", status)
        md["resourceVersion"] = str(self._next_rv())
        key = (ns, name)
        self._put(rt, key, new, old)
        self._audit(verb, rt, ns, name, ctx, False, sub)
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            self._remove(rt, key, new)
            return new
        self._emit(rt, ns, "MODIFIED", new, old)
        return new

    # ------------------------------------------------------------ delete

    def delete(self, rt, ns, name, ctx, options=None):
        options = options or {}
        with self.lock:
            obj = self.get(rt, ns, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                               f"UID in object meta: {obj['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"][
                    "resourceVersion"]:
                raise conflict(rt, name, "Precondition failed: ResourceVersion in precondition: "
                               f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                               f"{obj['metadata']['resourceVersion']}")
            if ctx.dry_run:
                return obj
            policy = options.get("propagationPolicy") or (
                "Orphan" if options.get("orphanDependents") else "Background")
            self._audit("delete", rt, ns, name, ctx, False)
            return self._delete_obj(rt, (obj["metadata"].get("namespace", ""), name), obj, policy)

    def _delete_obj(self, rt, key, obj, policy="Background"):
        if policy == "Orphan":
            self._orphan(obj["metadata"]["uid"])
        elif policy == "Foreground":
            self._gc_dependents(obj["metadata"]["uid"])
        if rt.plural == "namespaces":
            return self._delete_namespace(rt, key, obj)
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp"):
                return obj
            new = clone(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt.schema is not None:
                new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._put(rt, key, new, obj)
            self._emit(rt, key[0], "MODIFIED", new, obj)
            return new
        return self._remove(rt, key, obj)

    def _remove(self, rt, key, obj):
        gone = clone(obj)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        self._drop(rt, key, obj)
        self._emit(rt, key[0], "DELETED", gone)
        if rt.plural == "customresourcedefinitions":
            self._unregister_crd(obj)
        self._gc_dependents(obj["metadata"]["uid"])
        if key[0]:
            self._maybe_finish_namespace(key[0])
        return gone

    def _unregister_crd(self, crd):
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        types = [t for t in self.registry.all() if t.group == group and t.plural == plural]
        self.registry.remove_crd(crd["metadata"]["name"])
        bucket = self.objects.pop((group, plural), {})
        if types:
            for key, o in sorted(bucket.items()):
                gone = clone(o)
                gone["metadata"]["resourceVersion"] = str(self._next_rv())
                self.objects.setdefault((group, plural), {})[key] = o
                self._drop(types[0], key, o)
                self._emit(types[0], key[0], "DELETED", gone)

    def _orphan(self, uid):
        for (key, ns, name) in sorted(self.by_owner.get(uid, ())):
            o = self.objects.get(key, {}).get((ns, name))
            rt = self._type_of(*key)
            if o is None or rt is None:
                continue
            refs = o["metadata"].get("ownerReferences") or []
            new = clone(o)
            new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._put(rt, (ns, name), new, o)
            self._emit(rt, ns, "MODIFIED", new, o)

    def _type_of(self, group, plural):
        for t in self.registry.all():
            if t.group == group and t.plural == plural:
                return t
        return None

    def _gc_dependents(self, uid):
        """Garbage collector: an object all of whose owners are gone is deleted."""
        for (key, ns, name) in sorted(self.by_owner.get(uid, ())):
            o = self.objects.get(key, {}).get((ns, name))
            rt = self._type_of(*key)
            if o is None or rt is None:
                continue
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") != uid and r.get("uid") in self.by_uid for r in refs):
                continue
            self._delete_obj(rt, (ns, name), o)

    def _delete_namespace(self, rt, key, obj):
        ns = key[1]
        if not obj["metadata"].get("deletionTimestamp"):
            new = clone(obj)
            new["metadata"]["deletionTimestamp"] = now_iso()
            new["status"] = {"phase": "Terminating"}
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._bucket(rt)[key] = new
            self._emit(rt, "", "MODIFIED", new, obj)
            for (g, plural), bucket in list(self.objects.items()):
                t = self._type_of(g, plural)
                for k, o in list(bucket.items()):
                    if k[0] == ns and t is not None and k in bucket:
                        self._delete_obj(t, k, bucket[k])
        self._maybe_finish_namespace(ns)
        return self._bucket(rt).get(key, obj)

    def _maybe_finish_namespace(self, ns):
        nrt = self.registry.get("", "v1", "namespaces")
        nsobj = self._bucket(nrt).get(("", ns))
        if not nsobj or not nsobj["metadata"].get("deletionTimestamp"):
            return
        for (g, plural), bucket in self.objects.items():
            if any(k[0] == ns for k in bucket):
                return
        self._remove(nrt, ("", ns), nsobj)

    def delete_collection(self, rt, ns, label_selector, field_selector, ctx, options=None):
        items, _ = self.list(rt, ns, label_selector, field_selector)
        out = []
        for o in items:
            try:
                out.append(self.delete(rt, o["metadata"].get("namespace", ""),
                                       o["metadata"]["name"], ctx, options))
            except ApiError:
                pass
        return out


def _same(old, new):
    a = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "managedFields"})
    b = dict(new, metadata={k: v for k, v in new["metadata"].items() if k != "managedFields"})
    if a != b:
        return False
    return _managed_sans_time(old) == _managed_sans_time(new)


def _managed_sans_time(obj):
    """managedFields by (manager, operation, subresource), without the times: equal when the
    same manager owns the same fields (both sides are in the canonical form Managed writes)."""
    return {(e.get("manager"), e.get("operation"), e.get("subresource", "")):
            (e.get("apiVersion"), e.get("fieldsV1")) for e in
            obj["metadata"].get("managedFields") or [] if e.get("fieldsV1")}


def _selector_matches(sel, labels):
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def selector_to_string(sel):
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e.get("operator")
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(e.get('values') or [])})")
        elif op == "Exists":
            parts.append(e["key"])
        elif op == "DoesNotExist":
            parts.append("!" + e["key"])
    return ",".join(parts)
