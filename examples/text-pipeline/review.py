"""Step 5 (only for negative sentences): queue the sentence for a human."""
import time


def flag_for_review(payload):
    return dict(payload, needs_review=True, flagged_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
