"""Discovery documents, /version and the parts of OpenAPI v2/v3 that kubectl reads.

Discovery is served in the legacy (unaggregated) form; clients that ask for aggregated
discovery fall back to it because the response's Content-Type is plain application/json.
OpenAPI v3 carries, per group/version, one PATCH operation per kind with the
`x-kubernetes-group-version-kind` extension and the `fieldValidation` query parameter, which
is what kubectl checks before it sends `fieldValidation=Strict`. OpenAPI v2 is an empty
document (kubectl then skips client-side schema validation, as for unknown types).
"""

import hashlib
import json

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fakeapi",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
           "platform": "linux/amd64"}


def api_versions(host):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def api_group_list(registry):
    groups = []
    for g, versions in registry.groups():
        if not g:
            continue
        groups.append(_group(g, versions))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _group(g, versions):
    vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
    return {"name": g, "versions": vs, "preferredVersion": vs[0]}


def api_group(registry, group):
    for g, versions in registry.groups():
        if g == group:
            return dict(_group(g, versions), kind="APIGroup", apiVersion="v1")
    return None


def resource_list(registry, group, version):
    types = registry.in_group_version(group, version)
    if not types:
        return None
    res = []
    for t in sorted(types, key=lambda t: t.plural):
        res.extend(t.discovery_entries())
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": res}


_PARAMS = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
           for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]


def _gv_path(group, version):
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root(registry):
    paths = {}
    for g, versions in registry.groups():
        for v in versions:
            p = _gv_path(g, v)
            doc = openapi_v3_gv(registry, g, v)
            h = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16].upper()
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"}
    return {"paths": paths}


def openapi_v3_gv(registry, group, version):
    paths = {}
    schemas = {}
    for t in registry.in_group_version(group, version):
        base = "/" + _gv_path(group, version)
        if t.namespaced:
            item = f"{base}/namespaces/{{namespace}}/{t.plural}/{{name}}"
        else:
            item = f"{base}/{t.plural}/{{name}}"
        gvk = {"group": group, "version": version, "kind": t.kind}
        content = {ct: {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis."
                                   "meta.v1.Patch"}}
                   for ct in ("application/json-patch+json", "application/merge-patch+json",
                              "application/apply-patch+yaml")}
        paths[item] = {
            "patch": {"operationId": f"patch{t.kind}",
                      "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk,
                      "requestBody": {"content": content, "required": True},
                      "responses": {"200": {"description": "OK"}}},
            "parameters": list(_PARAMS)}
        sname = ".".join(reversed(group.split("."))) + f".{version}.{t.kind}" if group \
            else f"io.k8s.api.core.{version}.{t.kind}"
        sch = dict(t.schema) if t.schema is not None else {"type": "object"}
        sch["x-kubernetes-group-version-kind"] = [gvk]
        schemas[sname] = sch
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Patch"] = {"type": "object"}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fakeapi)", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_v2_json():
    return {"swagger": "2.0", "info": {"title": "Kubernetes (fakeapi)", "version": "v1.32.0"},
            "paths": {}, "definitions": {}}
