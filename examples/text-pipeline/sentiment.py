"""Step 3: score each sentence with a small word lexicon.

The class is instantiated once when the runtime starts (ASYA_HANDLER=sentiment.SentimentScorer.score),
so the lexicon is read from disk once, not per message.
"""
import os
import re

_WORD = re.compile(r"[a-z']+")


class SentimentScorer:
    def __init__(self):
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lexicon.txt")
        self.lexicon = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    word, score = line.split()
                    self.lexicon[word] = int(score)
        self.negations = {"not", "no", "never", "isn't", "wasn't", "don't", "didn't"}

    def score(self, payload):
        words = _WORD.findall(payload["sentence"].lower())
        total, flip = 0, 1
        for word in words:
            if word in self.negations:
                flip = -1
                continue
            total += flip * self.lexicon.get(word, 0)
            flip = 1
        label = "positive" if total > 0 else "negative" if total < 0 else "neutral"
        return dict(payload, score=total, label=label)
