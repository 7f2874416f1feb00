#!/usr/bin/env python3
"""Summarise interleaved benchmark pairs so one run tells whether a target is met.

Reads lines "ASYA_RATE BASELINE_RATE" (one per pair, in run order: each asya run beside the
baseline run next to it) from stdin and prints one line:

  LABEL: ratio 0.93 median of 5 pairs (0.88..1.02); asya best 19876/s (17000..19876),
         baseline best 21345/s (18000..21345); best/best 0.93; target >= 0.80: met

The verdict uses the median of per-pair ratios: drifting machine load hits both runs of a pair
alike, so the per-pair ratio is steady where absolute rates swing 3x (seen on a 2-vCPU VM).
Usage: pairs.py LABEL TARGET [UNIT]   (UNIT defaults to "/s"; TARGET "-": a comparison line with
no target, which ends "comparison, no target" instead of a verdict)
"""
import statistics
import sys


def summary(label, target, pairs, unit="/s"):
    """One line for [(asya, baseline), ...]; pairs with a missing or zero side are dropped."""
    pairs = [(a, b) for a, b in pairs if a and b and a > 0 and b > 0]
    want = "no target" if target is None else f"target >= {target:.2f}"
    if not pairs:
        return f"{label}: no valid runs ({want}): NOT measured"
    ratios = [a / b for a, b in pairs]
    asya = [a for a, _ in pairs]
    base = [b for _, b in pairs]
    med = statistics.median(ratios)
    if target is None:
        verdict = "comparison, no target"
    else:
        verdict = f"{want}: " + ("met" if med >= target else "NOT met")
    return (f"{label}: ratio {med:.2f} median of {len(pairs)} pairs "
            f"({min(ratios):.2f}..{max(ratios):.2f}); "
            f"asya best {max(asya):.0f}{unit} ({min(asya):.0f}..{max(asya):.0f}), "
            f"baseline best {max(base):.0f}{unit} ({min(base):.0f}..{max(base):.0f}); "
            f"best/best {max(asya) / max(base):.2f}; {verdict}")


def main() -> int:
    label = sys.argv[1]
    target = None if sys.argv[2] == "-" else float(sys.argv[2])
    unit = sys.argv[3] if len(sys.argv) > 3 else "/s"
    pairs = []
    for line in sys.stdin:
        try:
            a, b = (float(f) for f in line.split())
        except ValueError:
            continue
        pairs.append((a, b))
    line = summary(label, target, pairs, unit)
    print(line)
    return 0 if "NOT measured" not in line else 1


if __name__ == "__main__":
    sys.exit(main())
