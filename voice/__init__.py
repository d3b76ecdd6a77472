"""Voice prompts for the kiosk: one pyttsx3/espeak-ng speaker on its own thread.

Use ``Speaker(...).say(text)``; speech failures never raise into the caller, they
show up as ``Utterance.error``, ``Speaker.available`` and ``Speaker.fault``.
"""
from voice.speaker import DEFAULT_VOICE, Speaker, SpeechError, Utterance

__all__ = ["DEFAULT_VOICE", "Speaker", "SpeechError", "Utterance"]
