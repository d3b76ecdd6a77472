"""The remote help-desk console (远程帮办坐席): fleet at a glance, alerts, help calls; see __main__."""
