"""The terminal's brain in plain Python: visits, sessions, privacy. Never imports Kivy."""
