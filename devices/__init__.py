"""Device layer: one package per device class, each with an interface, real drivers and an emulator.

Nothing here imports from kiosk/, screens/ or voice/: arrows point down only.
"""
