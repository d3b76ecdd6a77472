"""Document scanners: SANE scanners and document cameras (高拍仪), one `Scanner` interface."""
