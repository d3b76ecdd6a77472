"""Document scanners as SANE lists them (python-sane, through devices/scanner/sane_library).

SANE reads its config dir once per process (SANE_CONFIG_DIR): detect uses --sane-config-dir,
else the environment's SANE_CONFIG_DIR, else the system's /etc/sane.d, where every backend
installed is asked in turn (that takes seconds). The dir used goes into the suggested
parameters, so the kiosk sees the same scanners. SANE's `test` backend shows only when a
config dir enables it (the emulated scanner).
"""
from __future__ import annotations

from provisioning.probes import Finding, Problem, Results


def probe(config_dir: str) -> Results:
    results = Results()
    try:
        from devices.scanner import sane_library
    except ImportError as exc:
        results.problems.append(Problem("sane", "python-sane", (
            f"python-sane cannot load ({exc}): apt-get install libsane1 and run scripts/setup.sh")))
        return results
    where = config_dir or "/etc/sane.d"
    try:
        sane_library.use_config_dir(config_dir or None)
        devices = sane_library.devices()
    except sane_library.SaneError as exc:
        results.problems.append(Problem("sane", where, f"SANE failed to list scanners ({exc}): check "
                                        f"`scanimage -L` and the backends enabled in {where}/dll.conf"))
        return results
    finally:
        sane_library.shutdown()
    for name, vendor, model, kind in devices:
        params = {"device": name}
        if config_dir:
            params["config_dir"] = config_dir
        emulated = "; SANE's test backend: an emulated scanner" if name.split(":")[0] == "test" else ""
        results.findings.append(Finding("sane", "scanner", "sane", params, f"SANE device {name}",
                                        f"SANE ({where}) lists {vendor} {model} ({kind}){emulated}",
                                        facts={"vendor": vendor, "model": model, "type": kind}))
    return results
