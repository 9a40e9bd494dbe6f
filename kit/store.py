"""The results store, asv's layout: one folder per machine.

    data/<machine>/machine.json            the fingerprint, versioned
    data/<machine>/capabilities.json       what works there (kit doctor)
    data/<machine>/<suite>/<key>.json      one result each, job + bins + traces

Only measuring writes here, every write is atomic (temporary file + rename),
and a result's name is its key, so a resumed sweep finds what it already has
and two processes writing different keys never clobber each other. Another
machine's folder dropped in beside these is just another machine.
"""
import json
import os
import re
import uuid

from .errors import OptionError
from .results import Result, write_atomic

DATA_ENV = "KIT_DATA"
MACHINE_FILE = "machine.json"
CAPABILITIES_FILE = "capabilities.json"
MACHINE_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def data_dir(path=None):
    return os.path.abspath(path or os.environ.get(DATA_ENV) or "data")


def safe_name(text):
    """A key or suite as a file name: readable, no separators."""
    name = _SAFE.sub("_", str(text)).strip("._")
    if not name:
        raise OptionError(None, f"{text!r} cannot be used as a name in the store")
    return name[:180]


def machine_dir(data, machine):
    return os.path.join(data_dir(data), safe_name(machine))


def save_machine(fingerprint, data=None, capabilities=None):
    """Writes machine.json (and capabilities.json) for the fingerprint's machine."""
    folder = machine_dir(data, fingerprint["name"])
    os.makedirs(folder, exist_ok=True)
    write_atomic(os.path.join(folder, MACHINE_FILE),
                 json.dumps({"version": MACHINE_VERSION, **fingerprint}, indent=2) + "\n")
    if capabilities is not None:
        write_atomic(os.path.join(folder, CAPABILITIES_FILE), json.dumps(capabilities, indent=2) + "\n")
    return folder


def result_path(machine, suite, key, data=None):
    return os.path.join(machine_dir(data, machine), safe_name(suite), safe_name(key) + ".json")


def has(machine, suite, key, data=None):
    return os.path.exists(result_path(machine, suite, key, data))


def save(result, suite, key=None, tags=None, data=None):
    """Stores a result under its machine (from its fingerprint) and returns
    the path. Without a key, a unique one (time + label + random) is made."""
    machine = (result.data.get("machine") or {}).get("name")
    if not machine:
        from .machine import fingerprint
        result.data["machine"] = fingerprint()
        machine = result.data["machine"]["name"]
    key = key or f"{result.data.get('timestamp', 0)}-{result.data.get('label', 'run')}-{uuid.uuid4().hex[:8]}"
    result.data["tags"] = {"suite": suite, "key": key, **(tags or {})}
    folder = machine_dir(data, machine)
    if not os.path.exists(os.path.join(folder, MACHINE_FILE)):
        save_machine(result.data["machine"], data)
    path = result_path(machine, suite, key, data)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    result.save(path)
    return path


def machines(data=None):
    """Every machine folder with a machine.json, newest results first."""
    root = data_dir(data)
    out = []
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        path = os.path.join(folder, MACHINE_FILE)
        if not os.path.isfile(path):
            continue
        try:
            with open(path) as fh:
                fingerprint = json.load(fh)
        except (OSError, ValueError):
            continue
        files = list(_result_files(folder))
        newest = max((os.path.getmtime(f) for f in files), default=os.path.getmtime(path))
        suites = sorted({os.path.basename(os.path.dirname(f)) for f in files})
        out.append({"name": name, "fingerprint": fingerprint, "results": len(files), "newest": newest,
                    "suites": suites, "folder": folder})
    out.sort(key=lambda m: m["newest"], reverse=True)
    return out


def _result_files(folder, suite=None):
    for sub in sorted(os.listdir(folder)):
        path = os.path.join(folder, sub)
        if not os.path.isdir(path) or (suite and sub != safe_name(suite)):
            continue
        for f in sorted(os.listdir(path)):
            if f.endswith(".json") and not f.startswith("."):
                yield os.path.join(path, f)


def load(machine, suite=None, data=None):
    """The stored Results of a machine (one suite, or all)."""
    folder = machine_dir(data, machine)
    if not os.path.isdir(folder):
        return []
    out = []
    for path in _result_files(folder, suite):
        try:
            out.append(Result.load(path))
        except (OSError, ValueError):
            continue  # a foreign or damaged file is not a result
    return out


def load_machine(machine, data=None):
    folder = machine_dir(data, machine)
    out = {}
    for name, key in ((MACHINE_FILE, "fingerprint"), (CAPABILITIES_FILE, "capabilities")):
        try:
            with open(os.path.join(folder, name)) as fh:
                out[key] = json.load(fh)
        except (OSError, ValueError):
            out[key] = None
    return out


def frame(machine, suite=None, data=None, per_job=False):
    """Tidy rows of every stored result, with its tags as columns."""
    import pandas as pd
    frames = []
    for r in load(machine, suite, data):
        f = r.to_frame(per_job=per_job)
        for k, v in (r.data.get("tags") or {}).items():
            f[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
