"""Resource types the fake API server serves: built-ins and the ones registered CRDs add.

A ResourceType carries what discovery, URL routing, schema handling and Table output need.
"""

import copy
import threading
from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    has_status: bool = False
    # CRD-only: the structural schema (openAPIV3Schema) and printer columns.
    schema: dict = None
    printer_columns: list = None
    crd_name: str = ""
    # Builtins whose lists of maps merge by key in strategic merge patches.
    strategic: bool = True

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self):
        return self.api_version

    @property
    def list_kind(self):
        return self.kind + "List"

    @property
    def qualified(self):
        """plural.group as in API error messages (`asyncactors.asya.sh`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self):
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def discovery_entries(self):
        main = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(ALL_VERBS),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        if self.group == "apps" and self.plural in ("deployments", "statefulsets"):
            out.append({"name": self.plural + "/scale", "singularName": "",
                        "namespaced": True, "group": "autoscaling", "version": "v1",
                        "kind": "Scale", "verbs": ["get", "patch", "update"]})
        if self.has_status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        return out


def _builtin():
    R = ResourceType
    return [
        R("", "v1", "Namespace", "namespaces", "namespace", namespaced=False,
          short_names=["ns"], has_status=True),
        R("", "v1", "Pod", "pods", "pod", short_names=["po"], categories=["all"],
          has_status=True),
        R("", "v1", "ConfigMap", "configmaps", "configmap", short_names=["cm"]),
        R("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", short_names=["sa"]),
        R("", "v1", "Secret", "secrets", "secret"),
        R("", "v1", "Service", "services", "service", short_names=["svc"],
          categories=["all"], has_status=True),
        R("", "v1", "Event", "events", "event", short_names=["ev"]),
        R("apps", "v1", "Deployment", "deployments", "deployment", short_names=["deploy"],
          categories=["all"], has_status=True),
        R("apps", "v1", "StatefulSet", "statefulsets", "statefulset", short_names=["sts"],
          categories=["all"], has_status=True),
        R("coordination.k8s.io", "v1", "Lease", "leases", "lease"),
        R("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers",
          "horizontalpodautoscaler", short_names=["hpa"], categories=["all"], has_status=True),
        R("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", "scaledobject",
          short_names=["so"], has_status=True, strategic=False),
        R("keda.sh", "v1alpha1", "TriggerAuthentication", "triggerauthentications",
          "triggerauthentication", short_names=["ta", "triggerauth"], strategic=False),
        R("apiextensions.k8s.io", "v1", "CustomResourceDefinition",
          "customresourcedefinitions", "customresourcedefinition", namespaced=False,
          short_names=["crd", "crds"], has_status=True),
    ]


class CrdError(ValueError):
    pass


def types_from_crd(crd):
    """ResourceTypes for every served version of a CRD object (dict). Raises CrdError."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    plural = names.get("plural")
    kind = names.get("kind")
    if not group or not plural or not kind:
        raise CrdError("spec.group, spec.names.plural and spec.names.kind are required")
    name = (crd.get("metadata") or {}).get("name")
    if name != f"{plural}.{group}":
        raise CrdError(f'metadata.name: Invalid value: "{name}": must be '
                       'spec.names.plural+"."+spec.group')
    scope = spec.get("scope", "Namespaced")
    if scope not in ("Namespaced", "Cluster"):
        raise CrdError(f'spec.scope: Unsupported value: "{scope}"')
    versions = spec.get("versions") or []
    if not versions:
        raise CrdError("spec.versions: Required value")
    out = []
    for v in versions:
        if not v.get("served", True):
            continue
        schema = ((v.get("schema") or {}).get("openAPIV3Schema"))
        if schema is None:
            raise CrdError(f"spec.versions[{v.get('name')}].schema.openAPIV3Schema: Required value")
        cols = v.get("additionalPrinterColumns")
        if cols is None:
            cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        out.append(ResourceType(
            group=group, version=v["name"], kind=kind, plural=plural,
            singular=names.get("singular") or kind.lower(), namespaced=(scope == "Namespaced"),
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []),
            has_status="status" in (v.get("subresources") or {}),
            schema=copy.deepcopy(schema), printer_columns=copy.deepcopy(cols),
            crd_name=name, strategic=False))
    return out


class Registry:
    """Thread-safe map of (group, version, plural) -> ResourceType."""

    def __init__(self):
        self._lock = threading.RLock()
        self._types = {}
        for t in _builtin():
            self._types[(t.group, t.version, t.plural)] = t

    def add_crd(self, crd):
        types = types_from_crd(crd)
        with self._lock:
            self.remove_crd(types[0].crd_name if types else "")
            for t in types:
                self._types[(t.group, t.version, t.plural)] = t
        return types

    def remove_crd(self, crd_name):
        with self._lock:
            for k in [k for k, t in self._types.items() if t.crd_name and t.crd_name == crd_name]:
                del self._types[k]

    def get(self, group, version, plural):
        with self._lock:
            return self._types.get((group, version, plural))

    def by_kind(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for t in self._types.values():
                if t.group == group and t.version == version and t.kind == kind:
                    return t
        return None

    def all(self):
        with self._lock:
            return list(self._types.values())

    def groups(self):
        """[(group, [versions])] in a stable order, core first."""
        out = {}
        for t in self.all():
            out.setdefault(t.group, [])
            if t.version not in out[t.group]:
                out[t.group].append(t.version)
        return sorted(out.items(), key=lambda kv: (kv[0] != "", kv[0]))

    def in_group_version(self, group, version):
        return [t for t in self.all() if t.group == group and t.version == version]
