"""Smart-card readers over PC/SC: the social security card and other card profiles.

- `interface`: what a smart-card reader offers the kiosk (events as the ID-card reader's);
- `profile`: how a card kind is read (application, files, record addressing), from data;
- `holder`: the social security card's holder data, masked in every repr;
- `pcsc_driver`: the reader through pyscard (needs pcscd);
- `card_emulator` + `vpcd_link` + `pcscd_rig`: virtual cards behind the real pcscd, for
  tests and the emulated terminal.

Import the driver and emulator modules directly; this package imports nothing heavy.
"""
