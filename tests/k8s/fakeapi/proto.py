"""Just enough Kubernetes protobuf decoding for the imperative kubectl commands that send it
for core types (`kubectl create namespace|configmap|secret|serviceaccount`). Other kinds are
refused with 415; responses are always JSON (kubectl accepts JSON back)."""

import base64

MAGIC = b"k8s\x00"


class ProtoError(ValueError):
    pass


def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf):
    """[(field number, wire type, value)] of one message."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ProtoError(f"unsupported wire type {wt}")
        out.append((num, wt, v))
    return out


def _str(v):
    return v.decode("utf-8")


def _map(entries, value=_str):
    out = {}
    for e in entries:
        f = {n: v for n, _, v in fields(e)}
        out[_str(f.get(1, b""))] = value(f.get(2, b""))
    return out


def _meta(buf):
    md, labels, annotations, finalizers = {}, [], [], []
    for num, _, v in fields(buf):
        if num == 1:
            md["name"] = _str(v)
        elif num == 2:
            md["generateName"] = _str(v)
        elif num == 3:
            md["namespace"] = _str(v)
        elif num == 6:
            md["resourceVersion"] = _str(v)
        elif num == 11:
            labels.append(v)
        elif num == 12:
            annotations.append(v)
        elif num == 14:
            finalizers.append(_str(v))
    if labels:
        md["labels"] = _map(labels)
    if annotations:
        md["annotations"] = _map(annotations)
    if finalizers:
        md["finalizers"] = finalizers
    return md


def _b64(v):
    return base64.b64encode(v).decode()


def decode(data):
    """Kubernetes protobuf envelope -> JSON-like object. Raises ProtoError."""
    if not data.startswith(MAGIC):
        raise ProtoError("missing k8s protobuf magic")
    env = {n: v for n, _, v in fields(data[len(MAGIC):])}
    tm = {n: _str(v) for n, _, v in fields(env.get(1, b""))}
    api_version, kind = tm.get(1, ""), tm.get(2, "")
    raw = env.get(2, b"")
    obj = {"apiVersion": api_version, "kind": kind}
    groups = {}
    for num, _, v in fields(raw):
        groups.setdefault(num, []).append(v)
    if 1 in groups:
        obj["metadata"] = _meta(groups[1][0])
    if kind == "Namespace":
        spec = {n: v for n, _, v in fields(groups.get(2, [b""])[0])}
        if spec:
            obj["spec"] = {"finalizers": [_str(v) for n, _, v in fields(groups[2][0])
                                          if n == 1]}
    elif kind == "ConfigMap":
        if 2 in groups:
            obj["data"] = _map(groups[2])
        if 3 in groups:
            obj["binaryData"] = _map(groups[3], _b64)
    elif kind == "Secret":
        if 2 in groups:
            obj["data"] = _map(groups[2], _b64)
        if 3 in groups:
            obj["type"] = _str(groups[3][0])
        if 4 in groups:
            obj["stringData"] = _map(groups[4])
    elif kind == "ServiceAccount":
        if 4 in groups:
            obj["automountServiceAccountToken"] = bool(_varint(groups[4][0], 0)[0]) \
                if isinstance(groups[4][0], bytes) else bool(groups[4][0])
    else:
        raise ProtoError(f"protobuf bodies are only decoded for Namespace, ConfigMap, Secret "
                         f"and ServiceAccount, not {kind or 'this type'}")
    return obj
