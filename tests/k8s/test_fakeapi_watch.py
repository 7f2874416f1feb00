"""Watch: ADDED/MODIFIED/DELETED from a resourceVersion, bookmarks, 410 Gone, selectors."""

import threading
import unittest

from fakeapi_testlib import FakeApiTestCase

CM = "/api/v1/namespaces/default/configmaps"


class WatchTest(FakeApiTestCase):
    controllers = False
    bookmark_interval = 0.2

    def collect(self, params, until, path=CM):
        out = []
        for ev in self.c.watch(path, params):
            out.append(ev)
            if until(out):
                break
        return out

    def test_events_after_resource_version_in_order(self):
        lst = self.ok(self.c.get(CM))
        rv = lst["metadata"]["resourceVersion"]
        a = self.ok(self.c.post(CM, {"metadata": {"name": "a"}, "data": {"k": "1"}}), 201)
        self.ok(self.c.patch(CM + "/a", {"data": {"k": "2"}}))
        self.ok(self.c.delete(CM + "/a"))
        evs = self.collect({"resourceVersion": rv, "timeoutSeconds": 30},
                           lambda o: len(o) == 3)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED"])
        self.assertEqual(evs[0]["object"]["metadata"]["uid"], a["metadata"]["uid"])
        self.assertEqual(evs[1]["object"]["data"], {"k": "2"})
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))
        self.assertGreater(rvs[0], int(rv))

    def test_watch_without_rv_starts_with_synthetic_added_then_live_events(self):
        self.ok(self.c.post(CM, {"metadata": {"name": "old"}}), 201)
        got = []
        started = threading.Event()

        def run():
            for ev in self.c.watch(CM, {"timeoutSeconds": 30}):
                got.append(ev)
                started.set()
                if len(got) == 2:
                    break

        t = threading.Thread(target=run)
        t.start()
        started.wait(30)
        self.ok(self.c.post(CM, {"metadata": {"name": "new"}}), 201)
        t.join(30)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in got],
                         [("ADDED", "old"), ("ADDED", "new")])

    def test_bookmarks_carry_the_current_resource_version(self):
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        self.ok(self.c.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}}),
                201)
        evs = self.collect({"resourceVersion": rv, "allowWatchBookmarks": "true",
                            "timeoutSeconds": 30}, lambda o: o[-1]["type"] == "BOOKMARK")
        bm = evs[-1]
        self.assertEqual(bm["object"]["kind"], "ConfigMap")
        # the secret's write moved the global rv; the bookmark reports it
        self.assertGreater(int(bm["object"]["metadata"]["resourceVersion"]), int(rv))
        self.assertEqual([e for e in evs if e["type"] != "BOOKMARK"], [])

    def test_no_bookmarks_unless_asked(self):
        evs = list(self.c.watch(CM, {"resourceVersion": self.ok(self.c.get(CM))["metadata"][
            "resourceVersion"], "timeoutSeconds": 1}))
        self.assertEqual(evs, [])

    def test_too_old_resource_version_gets_410(self):
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        self.ok(self.c.post(CM, {"metadata": {"name": "a"}}), 201)
        self.ok(self.c.post("/fake/compact", {}))
        evs = list(self.c.watch(CM, {"resourceVersion": rv, "timeoutSeconds": 5}))
        self.assertEqual(evs[0]["type"], "HTTP")
        self.assertEqual(evs[0]["code"], 410)
        self.assertEqual(evs[0]["object"]["reason"], "Expired")
        # a fresh rv after relisting works again
        rv2 = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        self.ok(self.c.patch(CM + "/a", {"data": {"x": "y"}}))
        evs = self.collect({"resourceVersion": rv2, "timeoutSeconds": 30},
                           lambda o: len(o) == 1)
        self.assertEqual(evs[0]["type"], "MODIFIED")

    def test_event_window_overflow_sends_error_410_in_stream(self):
        self.ok(self.c.post("/fake/config", {"eventWindow": 3}))
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        for i in range(5):
            self.ok(self.c.post(CM, {"metadata": {"name": f"c{i}"}}), 201)
        evs = list(self.c.watch(CM, {"resourceVersion": rv, "timeoutSeconds": 5}))
        self.assertEqual(evs[0]["code"], 410)
        # a running watch that falls behind a compaction gets an ERROR event
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        gen = self.c.watch(CM, {"resourceVersion": rv, "timeoutSeconds": 30})
        self.ok(self.c.post(CM, {"metadata": {"name": "x"}}), 201)
        first = next(gen)
        self.assertEqual(first["type"], "ADDED")
        self.ok(self.c.post("/fake/compact", {"expireWatches": True}))
        rest = list(gen)
        self.assertEqual(rest[-1]["type"], "ERROR")
        self.assertEqual(rest[-1]["object"]["code"], 410)

    def test_concurrent_writers_and_watchers_see_every_event_in_order(self):
        names = [f"c{i}" for i in range(4)]
        for n in names:
            self.ok(self.c.post(CM, {"metadata": {"name": n}, "data": {"i": "0"}}), 201)
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        results = {}

        def watcher(k):
            results[k] = self.collect({"resourceVersion": rv, "timeoutSeconds": 60},
                                      lambda o: len(o) == 4 * 25)

        def writer(n):
            for i in range(1, 26):
                while True:  # optimistic concurrency: read, modify, write, retry on 409
                    cur = self.ok(self.c.get(CM + "/" + n))
                    cur["data"]["i"] = str(i)
                    if self.c.put(CM + "/" + n, cur).code != 409:
                        break

        ws = [threading.Thread(target=watcher, args=(k,)) for k in range(2)]
        ts = [threading.Thread(target=writer, args=(n,)) for n in names] + [
            threading.Thread(target=writer, args=(names[0],))]
        for t in ws + ts:
            t.start()
        for t in ws + ts:
            t.join(120)
        for k in range(2):
            evs = results[k]
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
            self.assertEqual(rvs, sorted(set(rvs)))
            self.assertEqual({e["type"] for e in evs}, {"MODIFIED"})
        final = {o["metadata"]["name"]: o["data"]["i"] for o in self.ok(self.c.get(CM))["items"]}
        self.assertEqual(final, {n: "25" for n in names})

    def test_label_selector_turns_relabels_into_added_and_deleted(self):
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        self.ok(self.c.post(CM, {"metadata": {"name": "a", "labels": {"app": "x"}}}), 201)
        self.ok(self.c.patch(CM + "/a", {"metadata": {"labels": {"app": "y"}}}))
        self.ok(self.c.patch(CM + "/a", {"metadata": {"labels": {"app": "x"}}}))
        evs = self.collect({"resourceVersion": rv, "labelSelector": "app=x",
                            "timeoutSeconds": 30}, lambda o: len(o) == 3)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "DELETED", "ADDED"])

    def test_watch_on_other_namespace_and_field_selector_filters(self):
        rv = self.ok(self.c.get(CM))["metadata"]["resourceVersion"]
        self.ok(self.c.post("/api/v1/namespaces", {"metadata": {"name": "other"}}), 201)
        self.ok(self.c.post("/api/v1/namespaces/other/configmaps",
                            {"metadata": {"name": "a"}}), 201)
        self.ok(self.c.post(CM, {"metadata": {"name": "a"}}), 201)
        self.ok(self.c.post(CM, {"metadata": {"name": "b"}}), 201)
        evs = self.collect({"resourceVersion": rv, "fieldSelector": "metadata.name=b",
                            "timeoutSeconds": 30}, lambda o: len(o) == 1)
        self.assertEqual(evs[0]["object"]["metadata"]["name"], "b")
        evs = self.collect({"resourceVersion": rv, "timeoutSeconds": 30},
                           lambda o: len(o) == 2, path="/api/v1/configmaps")
        self.assertEqual([e["object"]["metadata"]["namespace"] for e in evs],
                         ["other", "default"])

    def test_send_initial_events_ends_with_marked_bookmark(self):
        self.ok(self.c.post(CM, {"metadata": {"name": "a"}}), 201)
        evs = self.collect({"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                            "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": 30},
                           lambda o: o[-1]["type"] == "BOOKMARK")
        self.assertEqual(evs[0]["type"], "ADDED")
        self.assertEqual(evs[-1]["object"]["metadata"]["annotations"],
                         {"k8s.io/initial-events-end": "true"})


if __name__ == "__main__":
    unittest.main()
