"""What a real API server does to a custom resource with a structural schema.

Order, as in apiextensions-apiserver: drop nulls of non-nullable fields, prune unknown fields
(or report them for fieldValidation=Strict/Warn), apply defaults (a nested default only where its
parent object exists), then validate (OpenAPI keywords, then `x-kubernetes-validations` CEL
rules, transition rules with `oldSelf` only where an old value exists).
"""

import json
import re

from . import cel
from .util import clone

_ROOT_KEEP = ("apiVersion", "kind", "metadata")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _join(path, key):
    return f"{path}.{key}" if path else key


def _is_obj_schema(s):
    return s.get("type") == "object" or "properties" in s


def prune(value, schema, path="", unknown=None, root=True):
    """Removes fields the schema does not declare. Returns the pruned value; appends the dotted
    paths of dropped fields to `unknown`."""
    if unknown is None:
        unknown = []
    if isinstance(value, dict):
        if schema.get("x-kubernetes-embedded-resource") and not root:
            pass
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        keep_all = schema.get("x-kubernetes-preserve-unknown-fields") or addl is True
        out = {}
        for k, v in value.items():
            if root and k in _ROOT_KEEP:
                out[k] = v
                continue
            if v is None and k in (props or {}) and not props[k].get("nullable"):
                continue  # null of a non-nullable field: dropped before defaulting
            if props is not None and k in props:
                out[k] = prune(v, props[k], _join(path, k), unknown, False)
            elif isinstance(addl, dict):
                out[k] = prune(v, addl, _join(path, k), unknown, False)
            elif keep_all:
                out[k] = v
            else:
                unknown.append(_join(path, k))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(v, schema["items"], f"{path}[{i}]", unknown, False)
                for i, v in enumerate(value)]
    return value


def apply_defaults(value, schema, skip=()):
    """Fills `default`s of properties of objects that are present (in place); not below the
    top-level keys in `skip`."""
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in skip:
                continue
            if k not in value and "default" in sub:
                value[k] = clone(sub["default"])
            if k in value:
                apply_defaults(value[k], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k in value:
                if k not in (schema.get("properties") or {}):
                    apply_defaults(value[k], addl)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(v, schema["items"])
    return value


def _show(v):
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return '"object"' if isinstance(v, dict) else '"array"'
    if v is None:
        return "null"
    return str(v)


def _type_name(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _type_ok(v, t, schema):
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(v, (int, str)) and not isinstance(v, bool)
    if t is None:
        return True
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return _type_name(v) == t


def _list_key_fields(schema):
    if schema.get("x-kubernetes-list-type") == "map":
        return schema.get("x-kubernetes-list-map-keys") or []
    return None


def _old_item(old_list, item, keys):
    if not keys or not isinstance(old_list, list) or not isinstance(item, dict):
        return _MISSING
    for o in old_list:
        if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys):
            return o
    return _MISSING


class _Missing:
    pass


_MISSING = _Missing()


def validate(value, schema, path="", old=_MISSING, errors=None, root=True, skip=()):
    """Returns a list of (field path, message, reason) for schema and CEL violations; the
    top-level keys in `skip` are not descended into (see process)."""
    if errors is None:
        errors = []
    if value is None:
        if not schema.get("nullable"):
            errors.append((path, "Invalid value: \"null\": " +
                           f"{path or '<root>'} in body must be of type "
                           f"{schema.get('type')}: \"null\"",
                           "FieldValueTypeInvalid"))
        return errors
    t = schema.get("type")
    if not _type_ok(value, t, schema):
        errors.append((path, f"Invalid value: \"{_type_name(value)}\": {path} in body must be of "
                       f"type {t}: \"{_type_name(value)}\"", "FieldValueTypeInvalid"))
        return errors
    label = path
    fmt = schema.get("format")
    if fmt in ("int32", "int64") and isinstance(value, int) and not isinstance(value, bool):
        bits = 31 if fmt == "int32" else 63
        if not -(2 ** bits) <= value < 2 ** bits:
            errors.append((path, f"Invalid value: {value}: {label} in body must be of type "
                           f"{fmt}: \"{value}\"", "FieldValueInvalid"))
    if fmt == "date-time" and isinstance(value, str) and not _DATE_TIME.match(value):
        errors.append((path, f"Invalid value: {_show(value)}: {label} in body must be of type "
                       f"date-time: {_show(value)}", "FieldValueInvalid"))
    for key in ("anyOf", "oneOf"):
        subs = schema.get(key)
        if subs:
            ok = sum(1 for sub in subs if not validate(value, sub, path, _MISSING, [], False))
            if (key == "anyOf" and ok == 0) or (key == "oneOf" and ok != 1):
                errors.append((path, f"Invalid value: {_show(value)}: {label} in body must "
                               f"match {'at least one' if key == 'anyOf' else 'exactly one'} "
                               f"schema in {key}", "FieldValueInvalid"))
    for sub in schema.get("allOf") or []:
        validate(value, sub, path, old, errors, False)
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path,
                                                            _MISSING, [], False):
        errors.append((path, f"Invalid value: {_show(value)}: {label} in body must not "
                       "validate the schema (not)", "FieldValueInvalid"))
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(_show(x) for x in schema["enum"])
        errors.append((path, f"Unsupported value: {_show(value)}: supported values: {allowed}",
                       "FieldValueNotSupported"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            m = schema["minimum"]
            if value < m or (schema.get("exclusiveMinimum") and value == m):
                op = ("greater than" if schema.get("exclusiveMinimum")
                      else "greater than or equal to")
                errors.append((path, f"Invalid value: {_show(value)}: {label} in body should be "
                               f"{op} {m}", "FieldValueInvalid"))
        if "maximum" in schema:
            m = schema["maximum"]
            if value > m or (schema.get("exclusiveMaximum") and value == m):
                op = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                errors.append((path, f"Invalid value: {_show(value)}: {label} in body should be "
                               f"{op} {m}", "FieldValueInvalid"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((path, f"Invalid value: {_show(value)}: {label} in body should be at "
                           f"least {schema['minLength']} chars long", "FieldValueInvalid"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path, f"Too long: may not be more than {schema['maxLength']} bytes",
                           "FieldValueTooLong"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append((path, f"Invalid value: {_show(value)}: {label} in body should match "
                           f"'{schema['pattern']}'", "FieldValueInvalid"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append((path, f"Invalid value: {len(value)}: {label} in body should have at "
                           f"least {schema['minItems']} items", "FieldValueInvalid"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append((path, f"Too many: {len(value)}: must have at most "
                           f"{schema['maxItems']} items", "FieldValueTooMany"))
        items = schema.get("items")
        keys = _list_key_fields(schema)
        if schema.get("x-kubernetes-list-type") == "set" or schema.get("uniqueItems"):
            seen = []
            for i, it in enumerate(value):
                if it in seen:
                    errors.append((f"{path}[{i}]", f"Duplicate value: {_show(it)}",
                                   "FieldValueDuplicate"))
                seen.append(it)
        if keys:
            seen = set()
            for i, it in enumerate(value):
                k = json.dumps([it.get(x) for x in keys] if isinstance(it, dict) else it)
                if k in seen:
                    errors.append((f"{path}[{i}]", f"Duplicate value: {k}", "FieldValueDuplicate"))
                seen.add(k)
        if isinstance(items, dict):
            for i, it in enumerate(value):
                validate(it, items, f"{path}[{i}]", _old_item(old, it, keys), errors, False)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for req in schema.get("required") or []:
            if req not in value:
                errors.append((_join(path, req), "Required value", "FieldValueRequired"))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append((path, f"Too many: {len(value)}: must have at most "
                           f"{schema['maxProperties']} items", "FieldValueTooMany"))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            errors.append((path, f"Invalid value: {len(value)}: {label} in body should have at "
                           f"least {schema['minProperties']} properties", "FieldValueInvalid"))
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            if root and (k in _ROOT_KEEP or k in skip):
                continue
            sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
            if sub is None:
                continue
            o = old.get(k, _MISSING) if isinstance(old, dict) else _MISSING
            validate(v, sub, _join(path, k), o, errors, False)
    _run_rules(value, schema, path, old, errors)
    return errors


_compiled = {}


def _compile(src):
    """(AST, whether it is a transition rule), compiled once per rule text."""
    hit = _compiled.get(src)
    if hit is None:
        ast = cel.compile_rule(src)
        hit = _compiled[src] = (ast, cel.references(ast, "oldSelf"))
    return hit


def _run_rules(value, schema, path, old, errors):
    for rule in schema.get("x-kubernetes-validations") or []:
        src = rule.get("rule", "")
        try:
            ast, transition = _compile(src)
        except cel.CelError as e:
            errors.append((path, f"Invalid value: {_show(value)}: compilation failed: {e}",
                           "FieldValueInvalid"))
            continue
        if transition and old is _MISSING:
            continue
        env = {"self": value}
        if transition:
            env["oldSelf"] = old
        field = path
        if rule.get("fieldPath"):
            field = path + rule["fieldPath"]
        try:
            ok = cel.evaluate(ast, env)
        except cel.CelError as e:
            errors.append((field, f"Invalid value: {_show(value)}: {e} evaluating rule: {src}",
                           "FieldValueInvalid"))
            continue
        if ok is True:
            continue
        msg = rule.get("message") or f"failed rule: {src}"
        if rule.get("messageExpression"):
            try:
                m = cel.evaluate(_compile(rule["messageExpression"])[0], env)
                if isinstance(m, str) and m.strip():
                    msg = m
            except cel.CelError:
                pass
        reason = rule.get("reason", "FieldValueInvalid")
        word = {"FieldValueForbidden": "Forbidden", "FieldValueRequired": "Required value",
                "FieldValueDuplicate": "Duplicate value"}.get(reason)
        if word:
            errors.append((field, f"{word}: {msg}", reason))
        else:
            errors.append((field, f"Invalid value: {_show(value)}: {msg}", reason))


def process(obj, schema, old=None):
    """prune + default + validate a whole custom resource.

    On an update, a top-level field (spec, status, ...) equal to the stored one is taken as
    stored: it was pruned, defaulted and validated when it was written, so doing that again
    could only repeat the same result (validation ratcheting, as Kubernetes does for unchanged
    fields) — unless a transition rule (`oldSelf`) lies below it. Rules on the root still run.

    Returns (new object, unknown field paths, errors)."""
    unknown = []
    same = ()
    if isinstance(old, dict) and isinstance(obj, dict):
        props = schema.get("properties") or {}
        same = tuple(k for k, v in obj.items() if k not in _ROOT_KEEP and k in props
                     and k in old and old[k] == v and not _has_transition(props[k]))
    if same:
        out = prune({k: v for k, v in obj.items() if k not in same}, schema, "", unknown)
        out = clone(out)
        apply_defaults(out, schema, skip=same)
        for k in same:
            out[k] = old[k]  # stored objects are never mutated in place: safe to share
        out = {k: out[k] for k in obj if k in out} | {k: v for k, v in out.items()
                                                      if k not in obj}
        errors = validate(out, schema, "", old, skip=same)
        return out, unknown, errors
    out = prune(clone(obj), schema, "", unknown)
    apply_defaults(out, schema)
    errors = validate(out, schema, "", _MISSING if old is None else old)
    return out, unknown, errors


_transition = {}


def _has_transition(schema):
    """True if a rule in this schema subtree mentions oldSelf (cached per schema node)."""
    hit = _transition.get(id(schema))
    if hit is None or hit[0] is not schema:
        found = "oldSelf" in json.dumps(schema.get("x-kubernetes-validations") or []) or any(
            _has_transition(sub) for sub in _subschemas(schema))
        hit = _transition[id(schema)] = (schema, found)
    return hit[1]


def _subschemas(schema):
    for v in (schema.get("properties") or {}).values():
        yield v
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            yield schema[key]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            if isinstance(sub, dict):
                yield sub
