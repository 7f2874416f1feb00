"""Simulated controllers: Deployment/StatefulSet -> pods (+ workload status), pod fates chosen
by tests, and KEDA (ScaledObject -> HPA `keda-hpa-<name>`, scaling the target).

Simplifications (see tests/k8s/README.md): a Deployment owns its pods directly (no
ReplicaSets); a rollout creates all new pods at once and removes the old ones when every new
pod is ready; pods never run anything, their status is computed from the fate rules; KEDA's
desired replica count is minReplicaCount unless a test sets it.
"""

import fnmatch
import hashlib
import json
import threading
import time
import traceback

from .store import Ctx
from .util import ApiError, clone, now_iso

_CM = Ctx("kube-controller-manager")
_KEDA = Ctx("keda-operator")


def _hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def _owner(obj):
    for r in obj["metadata"].get("ownerReferences") or []:
        if r.get("controller"):
            return r
    return None


class Controllers:
    def __init__(self, store, enabled=True):
        self.store = store
        self.reg = store.registry
        self.on = {"workloads": enabled, "keda": enabled}
        self.resync_seconds = 10.0
        self.fates = []
        self.hpa = {}          # (ns, scaledobject) -> {"desiredReplicas": n, ...}
        self._so_by_target = {}  # (ns, workload) -> {scaledobject names}
        self._so_target = {}     # (ns, scaledobject) -> workload
        self._dirty = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._busy = threading.Lock()
        store.listeners.append(self._on_event)

    # ------------------------------------------------------------ plumbing

    def t(self, group, version, plural):
        return self.reg.get(group, version, plural)

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True, name="fakeapi-ctrl")
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def describe(self):
        return dict(self.on, resyncSeconds=self.resync_seconds)

    def configure(self, body):
        for k in ("workloads", "keda"):
            if k in body:
                self.on[k] = bool(body[k])
        if "resyncSeconds" in body:
            self.resync_seconds = float(body["resyncSeconds"])
        self.kick_all()

    def set_fates(self, rules):
        self.fates = list(rules)
        self.kick_all()

    def set_hpa(self, ns, name, body):
        self.hpa[(ns, name)] = dict(body)
        self._mark(("so", ns, name))

    def kick_all(self):
        self._mark(("all",))

    def _mark(self, item):
        with self._lock:
            self._dirty.add(item)
        self._wake.set()

    def _on_event(self, ev):
        group, plural = ev.key
        md = ev.obj["metadata"]
        if plural in ("deployments", "statefulsets") and group == "apps":
            self._mark(("wl", plural, ev.ns, md["name"]))
            self._mark(("so-target", ev.ns, md["name"]))
        elif plural == "pods" and not group:
            o = _owner(ev.obj)
            if o and o.get("kind") in ("Deployment", "StatefulSet"):
                self._mark(("wl", o["kind"].lower() + "s", ev.ns, o["name"]))
        elif plural == "scaledobjects":
            self._mark(("so", ev.ns, md["name"]))
        elif plural == "horizontalpodautoscalers":
            o = _owner(ev.obj)
            if o and o.get("kind") == "ScaledObject":
                self._mark(("so", ev.ns, o["name"]))

    def _loop(self):
        next_resync = time.monotonic() + self.resync_seconds
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            if time.monotonic() >= next_resync:
                self._mark(("all",))
                next_resync = time.monotonic() + self.resync_seconds
            self._drain()

    def sync_now(self):
        """Runs every controller over every object until nothing is left to do (tests)."""
        self._mark(("all",))
        for _ in range(10):
            self._drain()
            with self._lock:
                if not self._dirty:
                    return

    def _drain(self):
        with self._busy:
            with self._lock:
                items, self._dirty = self._dirty, set()
            if ("all",) in items:
                items.discard(("all",))
                items |= self._everything()
            for it in sorted(items, key=lambda i: i[0] != "wl"):
                try:
                    self._sync(it)
                except ApiError:
                    self._retry(it)
                except Exception:  # keep the simulation alive; retry later
                    traceback.print_exc()
                    self._retry(it)

    def _retry(self, it):
        with self._lock:
            self._dirty.add(it)

    def _everything(self):
        out = set()
        with self.store.lock:
            for plural in ("deployments", "statefulsets"):
                for (ns, name) in self.store.objects.get(("apps", plural), {}):
                    out.add(("wl", plural, ns, name))
            for (ns, name) in self.store.objects.get(("keda.sh", "scaledobjects"), {}):
                out.add(("so", ns, name))
        return out

    def _sync(self, it):
        if it[0] == "wl" and self.on["workloads"]:
            self._sync_workload(it[1], it[2], it[3])
        elif it[0] == "so" and self.on["keda"]:
            self._sync_scaledobject(it[1], it[2])
        elif it[0] == "so-target" and self.on["keda"]:
            for so_name in sorted(self._so_by_target.get((it[1], it[2]), ())):
                self._sync_scaledobject(it[1], so_name)

    # ------------------------------------------------------------ pod fates

    def _fate(self, pod, container):
        owner = _owner(pod) or {}
        pod.setdefault("spec", {})
        for rule in self.fates:
            m = rule.get("match") or {}
            if "namespace" in m and m["namespace"] != pod["metadata"].get("namespace"):
                continue
            if "workload" in m and not fnmatch.fnmatchcase(owner.get("name", ""), m["workload"]):
                continue
            if "pod" in m and not fnmatch.fnmatchcase(pod["metadata"].get("name", ""),
                                                      m["pod"]):
                continue
            if container is not None:
                if "container" in m and not fnmatch.fnmatchcase(container.get("name", ""),
                                                                m["container"]):
                    continue
                if "image" in m and not fnmatch.fnmatchcase(container.get("image", ""),
                                                            m["image"]):
                    continue
            elif "container" in m or "image" in m:
                if not any(self._fate(pod, c) is rule for c in pod["spec"].get("containers", [])):
                    continue
            return rule
        return {"fate": "ready"}

    def pod_status(self, pod):
        """The status a kubelet would report for this pod under the current fates."""
        t0 = pod["metadata"].get("creationTimestamp") or now_iso()
        containers = pod["spec"].get("containers") or []
        pod_rule = self._fate(pod, None)
        if pod_rule.get("fate") == "unschedulable":
            return {"phase": "Pending", "qosClass": "BestEffort", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastProbeTime": None, "lastTransitionTime": t0,
                "message": pod_rule.get("message", "0/1 nodes are available: 1 Insufficient "
                                        "cpu. preemption: 0/1 nodes are available: 1 No "
                                        "preemption victims found for incoming pod.")}]}
        if pod_rule.get("fate") in ("failed", "mountfail"):
            failed = pod_rule["fate"] == "failed"
            msg = pod_rule.get("message") or (
                "containers with unready status: [" + " ".join(c["name"] for c in containers)
                + "]" if failed else 'MountVolume.SetUp failed for volume "asya-runtime" : '
                'configmap "asya-runtime" not found')
            state = ({"terminated": {"exitCode": int(pod_rule.get("exitCode", 1)),
                                     "reason": "Error", "startedAt": t0, "finishedAt": t0}}
                     if failed else {"waiting": {"reason": "ContainerCreating"}})
            conds = []
            for ctype, ok in (("PodReadyToStartContainers", failed), ("Initialized", True),
                              ("Ready", False), ("ContainersReady", False),
                              ("PodScheduled", True)):
                c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                     "lastTransitionTime": t0}
                if ctype in ("Ready", "ContainersReady"):
                    c["reason"], c["message"] = "ContainersNotReady", msg
                conds.append(c)
            return {"phase": "Failed" if failed else "Pending", "hostIP": "10.0.0.1",
                    "startTime": t0, "qosClass": "BestEffort", "conditions": conds,
                    "containerStatuses": [
                        {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                         "restartCount": 0, "ready": False, "started": False, "state": state}
                        for c in containers]}
        statuses = []
        for c in containers:
            rule = self._fate(pod, c)
            fate = rule.get("fate", "ready")
            st = {"name": c["name"], "image": c.get("image", ""), "imageID": "",
                  "restartCount": 0, "ready": False, "started": False}
            if fate == "crashloop":
                st["restartCount"] = int(rule.get("restartCount", 6))
                st["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message":
                               f"back-off 5m0s restarting failed container={c['name']} "
                               f"pod={pod['metadata'].get('name', '')}"}}
                st["lastState"] = {"terminated": {"exitCode": int(rule.get("exitCode", 1)),
                                                  "reason": "Error", "startedAt": t0,
                                                  "finishedAt": t0}}
                st["imageID"] = "fake://" + c.get("image", "")
            elif fate == "imagepull":
                reason = rule.get("reason", "ImagePullBackOff")
                msg = (f'Back-off pulling image "{c.get("image", "")}"' if reason ==
                       "ImagePullBackOff" else f'Failed to pull image "{c.get("image", "")}": '
                       "rpc error: code = NotFound desc = not found")
                st["state"] = {"waiting": {"reason": reason, "message": msg}}
            elif fate == "notready":
                st.update(started=True, state={"running": {"startedAt": t0}},
                          imageID="fake://" + c.get("image", ""))
            elif fate == "waiting":
                st["state"] = {"waiting": {"reason": rule.get("reason", "ContainerCreating")}}
            else:
                st.update(ready=True, started=True, state={"running": {"startedAt": t0}},
                          imageID="fake://" + c.get("image", ""))
            statuses.append(st)
        all_ready = all(s["ready"] for s in statuses)
        running = any("running" in s.get("state", {}) or "lastState" in s for s in statuses)
        unready = [s["name"] for s in statuses if not s["ready"]]

        def cond(ctype, ok, reason=None, msg=None):
            c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
                 "lastTransitionTime": t0}
            if not ok and reason:
                c["reason"], c["message"] = reason, msg
            return c

        msg = f"containers with unready status: [{' '.join(unready)}]"
        return {
            "phase": "Running" if running else "Pending", "hostIP": "10.0.0.1",
            "podIP": "10.1.0." + str(int(_hash(pod["metadata"].get("name", "")), 16) % 250 + 2),
            "startTime": t0, "qosClass": "BestEffort",
            "conditions": [cond("PodReadyToStartContainers", True), cond("Initialized", True),
                           cond("Ready", all_ready, "ContainersNotReady", msg),
                           cond("ContainersReady", all_ready, "ContainersNotReady", msg),
                           cond("PodScheduled", True)],
            "containerStatuses": statuses}

    @staticmethod
    def pod_ready(pod):
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return c.get("status") == "True"
        return False

    # ------------------------------------------------------------ workloads

    def _sync_workload(self, plural, ns, name):
        rt = self.t("apps", "v1", plural)
        prt = self.t("", "v1", "pods")
        try:
            wl = self.store.get(rt, ns, name)
        except ApiError:
            return
        if wl["metadata"].get("deletionTimestamp"):
            return
        spec = wl.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        thash = _hash(template)
        uid = wl["metadata"]["uid"]
        active = self._owned_pods(uid)
        hash_label = "pod-template-hash" if plural == "deployments" else "controller-revision-hash"
        for p in active:  # keep each pod's status in line with the fates
            st = self.pod_status(p)
            if st != p.get("status"):
                np_ = clone(p)
                np_["status"] = st
                self.store.update(prt, ns, p["metadata"]["name"], np_, _CM, "status")
        active = self._owned_pods(uid)
        new = [p for p in active if p["metadata"].get("labels", {}).get(hash_label) == thash]
        old = [p for p in active if p not in new]
        if plural == "statefulsets":
            for p in old:
                self._delete_pod(ns, p)
            have = {p["metadata"]["name"] for p in new}
            for i in range(desired):
                if f"{name}-{i}" not in have:
                    self._create_pod(wl, f"{name}-{i}", hash_label, thash, ordinal=i)
            for p in new:
                try:
                    i = int(p["metadata"]["name"].rsplit("-", 1)[1])
                except ValueError:
                    i = desired
                if i >= desired:
                    self._delete_pod(ns, p)
        else:
            if len(new) < desired:
                for _ in range(desired - len(new)):
                    self._create_pod(wl, None, hash_label, thash)
            elif len(new) > desired:
                extra = sorted(new, key=lambda p: (self.pod_ready(p), p["metadata"]["name"]))
                for p in extra[:len(new) - desired]:
                    self._delete_pod(ns, p)
            new_ready = sum(1 for p in new if self.pod_ready(p))
            if desired == 0 or new_ready >= desired:
                for p in old:
                    self._delete_pod(ns, p)
        self._workload_status(rt, ns, name, uid, thash, hash_label)

    def _owned_pods(self, uid):
        return [p for p in self.store.dependents(uid, "", "pods")
                if (_owner(p) or {}).get("uid") == uid
                and not p["metadata"].get("deletionTimestamp")]

    def _create_pod(self, wl, name, hash_label, thash, ordinal=None):
        tmpl = clone((wl.get("spec") or {}).get("template") or {})
        md = tmpl.get("metadata") or {}
        labels = dict(md.get("labels") or {})
        labels[hash_label] = thash
        ns = wl["metadata"]["namespace"]
        pmd = {"namespace": ns, "labels": labels,
               "ownerReferences": [{"apiVersion": wl["apiVersion"], "kind": wl["kind"],
                                    "name": wl["metadata"]["name"], "uid": wl["metadata"]["uid"],
                                    "controller": True, "blockOwnerDeletion": True}]}
        if md.get("annotations"):
            pmd["annotations"] = dict(md["annotations"])
        if name:
            pmd["name"] = name
            labels["statefulset.kubernetes.io/pod-name"] = name
        else:
            pmd["generateName"] = f"{wl['metadata']['name']}-{thash[:9]}-"
        spec = tmpl.get("spec") or {}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": spec}
        if self._fate(pod, None).get("fate") != "unschedulable":
            spec["nodeName"] = "fake-node"
        created = self.store.create(self.t("", "v1", "pods"), ns, pod, _CM)
        st = self.pod_status(created)
        created = clone(created)
        created["status"] = st
        try:
            self.store.update(self.t("", "v1", "pods"), ns, created["metadata"]["name"],
                              created, _CM, "status")
        except ApiError:
            pass

    def _delete_pod(self, ns, pod):
        try:
            self.store.delete(self.t("", "v1", "pods"), ns, pod["metadata"]["name"], _CM)
        except ApiError:
            pass

    def _workload_status(self, rt, ns, name, uid, thash, hash_label):
        wl = self.store.get(rt, ns, name)
        spec = wl.get("spec") or {}
        desired = int(spec.get("replicas", 1))
        active = self._owned_pods(uid)
        ready = sum(1 for p in active if self.pod_ready(p))
        updated = sum(1 for p in active if p["metadata"].get("labels", {}).get(hash_label)
                      == thash)
        old = wl.get("status") or {}
        old_conds = {c["type"]: c for c in old.get("conditions") or []}
        st = {"observedGeneration": wl["metadata"].get("generation", 1)}
        for k, v in (("replicas", len(active)), ("readyReplicas", ready),
                     ("availableReplicas", ready), ("updatedReplicas", updated),
                     ("unavailableReplicas", max(desired - ready, 0))):
            if v:
                st[k] = v
        if rt.plural == "statefulsets":
            st.pop("unavailableReplicas", None)
            st["currentReplicas"] = updated
            st["currentRevision"] = st["updateRevision"] = f"{name}-{thash}"
            st["collisionCount"] = 0
        else:
            now = now_iso()

            def cond(ctype, ok, reason, msg):
                c = {"type": ctype, "status": "True" if ok else "False", "reason": reason,
                     "message": msg, "lastUpdateTime": now, "lastTransitionTime": now}
                o = old_conds.get(ctype)
                if o and o.get("status") == c["status"] and o.get("reason") == reason:
                    return o
                if o and o.get("status") == c["status"]:
                    c["lastTransitionTime"] = o.get("lastTransitionTime", now)
                return c

            avail = ready >= desired
            done = updated == desired and ready >= desired and len(active) == desired
            st["conditions"] = [
                cond("Available", avail, "MinimumReplicasAvailable" if avail else
                     "MinimumReplicasUnavailable", "Deployment has minimum availability." if
                     avail else "Deployment does not have minimum availability."),
                cond("Progressing", True, "NewReplicaSetAvailable" if done else
                     "ReplicaSetUpdated", f'ReplicaSet "{name}-{thash[:9]}" has successfully '
                     "progressed." if done else f'ReplicaSet "{name}-{thash[:9]}" is '
                     "progressing.")]
        if st != old:
            new = clone(wl)
            new["status"] = st
            self.store.update(rt, ns, name, new, _CM, "status")

    # ------------------------------------------------------------ KEDA

    def _sync_scaledobject(self, ns, name):
        sort = self.t("keda.sh", "v1alpha1", "scaledobjects")
        hrt = self.t("autoscaling", "v2", "horizontalpodautoscalers")
        try:
            so = self.store.get(sort, ns, name)
        except ApiError:
            return
        if so["metadata"].get("deletionTimestamp"):
            return
        spec = so.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        prev = self._so_target.get((ns, name))
        if prev is not None:
            self._so_by_target.get((ns, prev), set()).discard(name)
        self._so_target[(ns, name)] = ref.get("name", "")
        self._so_by_target.setdefault((ns, ref.get("name", "")), set()).add(name)
        kind = ref.get("kind") or "Deployment"
        wrt = self.t("apps", "v1", "statefulsets" if kind == "StatefulSet" else "deployments")
        mn = int(spec.get("minReplicaCount", 0))
        mx = int(spec.get("maxReplicaCount", 100))
        metrics = []
        for i, trig in enumerate(spec.get("triggers") or []):
            meta = trig.get("metadata") or {}
            q = meta.get("queueName") or (meta.get("queueURL", "").rsplit("/", 1)[-1]) or name
            target = str(meta.get("value") or meta.get("queueLength") or "5")
            metrics.append({"type": "External", "external": {
                "metric": {"name": f"s{i}-{trig.get('type', 'unknown')}-{q}",
                           "selector": {"matchLabels": {"scaledobject.keda.sh/name": name}}},
                "target": {"type": "AverageValue", "averageValue": target}}})
        hspec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind,
                                    "name": ref.get("name", "")},
                 "minReplicas": max(1, mn), "maxReplicas": mx, "metrics": metrics}
        beh = (((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {})
               .get("behavior"))
        if beh:
            hspec["behavior"] = beh
        hname = f"keda-hpa-{name}"
        owner = [{"apiVersion": so["apiVersion"], "kind": "ScaledObject", "name": name,
                  "uid": so["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        labels = {"app.kubernetes.io/managed-by": "keda-operator",
                  "app.kubernetes.io/name": hname, "app.kubernetes.io/part-of": name,
                  "scaledobject.keda.sh/name": name}
        try:
            hpa = self.store.get(hrt, ns, hname)
            if hpa.get("spec") != hspec or hpa["metadata"].get("ownerReferences") != owner:
                new = clone(hpa)
                new["spec"] = hspec
                new["metadata"]["ownerReferences"] = owner
                hpa = self.store.update(hrt, ns, hname, new, _KEDA)
        except ApiError as e:
            if e.code != 404:
                raise
            hpa = self.store.create(hrt, ns, {"metadata": {
                "name": hname, "namespace": ns, "labels": labels, "ownerReferences": owner},
                "spec": hspec}, _KEDA)
        hook = self.hpa.get((ns, name), {})
        desired = int(hook.get("desiredReplicas", mn))
        desired = max(0, min(desired, mx))
        current = None
        try:
            wl = self.store.get(wrt, ns, ref.get("name", ""))
            if int((wl.get("spec") or {}).get("replicas", 1)) != desired:
                self.store.patch(wrt, ns, wl["metadata"]["name"], "merge",
                                 {"spec": {"replicas": desired}}, _KEDA)
                wl = self.store.get(wrt, ns, wl["metadata"]["name"])
            current = int((wl.get("status") or {}).get("replicas", 0))
        except ApiError as e:
            if e.code != 404:
                raise
        current = int(hook.get("currentReplicas", current if current is not None else 0))
        old = hpa.get("status") or {}
        st = {"currentReplicas": current, "desiredReplicas": desired,
              "currentMetrics": [{"type": "External", "external": {
                  "metric": m["external"]["metric"],
                  "current": {"averageValue": str(hook.get("metricValue", "0"))}}}
                  for m in metrics]}
        if old.get("desiredReplicas") != desired:
            st["lastScaleTime"] = now_iso()
        elif old.get("lastScaleTime"):
            st["lastScaleTime"] = old["lastScaleTime"]
        t = now_iso()
        oc = {c["type"]: c for c in old.get("conditions") or []}

        def cond(ctype, ok, reason, msg):
            c = {"type": ctype, "status": "True" if ok else "False", "reason": reason,
                 "message": msg, "lastTransitionTime": t}
            o = oc.get(ctype)
            if o and o.get("status") == c["status"] and o.get("reason") == reason:
                return o
            return c

        st["conditions"] = [
            cond("AbleToScale", True, "ReadyForNewScale", "recommended size matches current "
                 "size"),
            cond("ScalingActive", desired > 0, "ValidMetricFound" if desired > 0 else
                 "ScalingDisabled", "the HPA was able to successfully calculate a replica count"
                 if desired > 0 else "scaling is disabled since the replica count of the target "
                 "is zero"),
            cond("ScalingLimited", False, "DesiredWithinRange", "the desired count is within "
                 "the acceptable range")]
        if st != old:
            new = clone(self.store.get(hrt, ns, hname))
            new["status"] = st
            self.store.update(hrt, ns, hname, new, _KEDA, "status")
        sst = dict(so.get("status") or {})
        socond = {c["type"]: c for c in sst.get("conditions") or []}

        def scond(ctype, ok, reason, msg):
            c = {"type": ctype, "status": "True" if ok else "False", "reason": reason,
                 "message": msg}
            o = socond.get(ctype)
            return o if o == c else c

        want = {"hpaName": hname, "scaleTargetKind": f"apps/v1.{kind}",
                "scaleTargetGVKR": {"group": "apps", "version": "v1", "kind": kind,
                                    "resource": wrt.plural},
                "originalReplicaCount": sst.get("originalReplicaCount", 1),
                "conditions": [
                    scond("Ready", bool(metrics), "ScaledObjectReady" if metrics else
                          "ScaledObjectCheckFailed", "ScaledObject is defined correctly and is "
                          "ready for scaling" if metrics else "ScaledObject has no triggers"),
                    scond("Active", desired > 0, "ScalerActive" if desired > 0 else
                          "ScalerNotActive", "Scaling is performed because triggers are active"
                          if desired > 0 else "Scaling is not performed because triggers are "
                          "not active"),
                    scond("Fallback", False, "NoFallbackFound", "No fallbacks are active on "
                          "this scaled object")]}
        if want != so.get("status"):
            new = clone(so)
            new["status"] = want
            self.store.update(sort, ns, name, new, _KEDA, "status")
