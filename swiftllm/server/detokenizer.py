"""Output text grown token by token: each new token decodes a window of two or three tokens, not the whole output.

The window starts at the last token whose text was emitted, so a decoder that treats the first token of a
window specially (a stripped leading space) does so for both the window before and after the new token,
and their difference is exactly the new token's text. A token that ends inside a multi-byte character
decodes to U+FFFD; its text is held back until the character completes (or the output ends).
"""
from typing import Callable

REPLACEMENT_CHAR = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, decode: Callable[[list[int]], str], first_output: int):
        """``first_output``: index of the first output token in the token lists ``update`` is given."""
        self._decode = decode
        self._offset = first_output
        self.text = ""
        self._window_start = 0     # output index where the decoded window begins
        self._emitted = 0          # output tokens whose text is in ``self.text``
        self._closed = False

    def update(self, token_ids: list[int], final: bool = False) -> str:
        """Append the text of the output tokens of ``token_ids`` not yet emitted; returns the appended text ('' while
        a character is incomplete, unless ``final``)."""
        num_output = len(token_ids) - self._offset
        if self._closed or self._emitted == num_output:
            return ""
        window = token_ids[self._offset + self._window_start:]
        before = self._decode(window[:self._emitted - self._window_start])
        after = self._decode(window)
        if not final and (after.endswith(REPLACEMENT_CHAR) or len(after) <= len(before)):
            return ""
        new_text = after[len(before):]
        self.text += new_text
        self._window_start, self._emitted = self._emitted, num_output
        return new_text

    def cut(self, length: int) -> None:
        """End the text at ``length`` characters (where a stop string begins); later updates add nothing."""
        self.text = self.text[:length]
        self._closed = True
