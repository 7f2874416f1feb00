"""Step 1: check an order before anything else touches it; bad orders fail here (error-end)."""


class InvalidOrder(ValueError):
    pass


def validate_order(order):
    if not isinstance(order, dict):
        raise InvalidOrder("order must be a JSON object")
    customer = order.get("customer")
    if not isinstance(customer, str) or not customer:
        raise InvalidOrder("order needs a 'customer' name")
    lines = order.get("lines")
    if not isinstance(lines, list) or not lines:
        raise InvalidOrder("order needs a non-empty 'lines' list")
    for i, line in enumerate(lines):
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            raise InvalidOrder("line %d: needs a 'sku' string" % i)
        qty = line.get("qty")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise InvalidOrder("line %d: 'qty' must be a positive integer, got %r" % (i, qty))
    return {"customer": customer, "lines": lines, "currency": order.get("currency", "EUR")}
