"""Step 2: split a document into sentences (fan-out: one message per sentence).

Returning a list makes the runtime emit one envelope per element; the sidecar gives them the ids
<id>, <id>-1, <id>-2, ... with parent_id set to the document's id.
"""
import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(payload):
    sentences = [s.strip() for s in _SENTENCE_END.split(payload["text"]) if s.strip()]
    return [
        {"sentence": s, "index": i, "total": len(sentences), "source": payload.get("source")}
        for i, s in enumerate(sentences)
    ]
