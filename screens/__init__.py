"""Kivy touchscreen layer: one screen per step of a visit, each a `.py` + `.kv` pair.

Screens show the Visit's current View and forward touches to its actions; they hold
no business rules. Start with `screens.app.run_app(terminal)` (or build
`screens.app.KioskApp`). Importing this package imports nothing from Kivy.
"""
import os

# Kivy's default log mode ("KIVY") hangs its own console and file handlers (the file in
# ~/.kivy/logs) on the root logger, so every kiosk log record would also be written
# there without the privacy filter of kiosk.logsetup. "PYTHON" leaves logging to the
# kiosk. It must be set before Kivy is first imported; an explicit setting wins.
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
