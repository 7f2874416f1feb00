"""Step 1: clean up raw text (payload mode).

Input:  {"text": "  Some   raw text!  ", "source": "optional id"}
Output: {"text": "Some raw text!", "source": ...}
"""
import re
import unicodedata

_SPACES = re.compile(r"\s+")


def normalize(payload):
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ValueError("payload needs a non-empty 'text' string")
    text = unicodedata.normalize("NFKC", text)
    text = _SPACES.sub(" ", text).strip()
    return {"text": text, "source": payload.get("source")}
