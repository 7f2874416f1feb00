"""Step 3: totals with VAT."""

VAT_RATE = 0.20


def total(order):
    net = sum(line["line_cents"] for line in order["lines"])
    vat = round(net * VAT_RATE)
    return dict(order, net_cents=net, vat_cents=vat, total_cents=net + vat)
