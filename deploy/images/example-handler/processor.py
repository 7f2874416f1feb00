"""Example handler: ASYA_HANDLER=processor.TextProcessor.process (the seed's text-processor)."""


class TextProcessor:
    def __init__(self, lowercase: bool = True):
        # Created once per replica, with no arguments: load models or clients here.
        self.lowercase = lowercase

    def process(self, payload: dict) -> dict:
        text = payload.get("text", "")
        words = text.split()
        return {**payload, "words": len(words), "text": text.lower() if self.lowercase else text}
