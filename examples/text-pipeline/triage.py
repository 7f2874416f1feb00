"""Step 4: a router (envelope mode): negative sentences get a detour through `review`.

In envelope mode the handler sees the whole envelope and moves `route.current` itself. It may
add actors after the current one, never change the ones already visited.
"""


def route_by_sentiment(envelope):
    route = envelope["route"]
    current = route["current"]
    if envelope["payload"].get("label") == "negative":
        route["actors"] = route["actors"][: current + 1] + ["review"] + route["actors"][current + 1 :]
    route["current"] = current + 1
    return envelope
