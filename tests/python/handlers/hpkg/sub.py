"""A handler inside a package: ASYA_HANDLER=hpkg.sub.func / hpkg.sub.Greeter.greet."""


def func(payload):
    return {"from": "hpkg.sub.func", "payload": payload}


class Greeter:
    def greet(self, payload):
        return "hello %s" % payload
