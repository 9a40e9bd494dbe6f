#!/usr/bin/env python3
"""Writes kit/fio_names.py: every option name (and alias) fio 3.33 knows,
read from fio's own source at the fio-3.33 tag -- options.c's fio_options[],
each ioengine's options[] in engines/*.c and the options the tiobench and act
profiles (profiles/*.c) add to fio_options[] when fio starts -- with fio's
help text.

    python3 scripts/fio_option_names.py [FIO_GIT_DIR] [TAG]

FIO_GIT_DIR defaults to /work/.mirror/axboe+fio/repo (a clone of
https://github.com/axboe/fio), TAG to fio-3.33. Only the arrays of
struct fio_option are read (an ioengine's own .name, "libaio", is not an
option); both sides of an #ifdef count (fio knows the name either way:
where the feature is compiled out it refuses it as unsupported). The
output is deterministic, so re-running it on the same tag changes nothing.
"""
import os
import pprint
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, os.pardir, "kit", "fio_names.py")
DEFAULT_GIT = "/work/.mirror/axboe+fio/repo"
DEFAULT_TAG = "fio-3.33"

DEPRECATED_TYPES = {"FIO_OPT_DEPRECATED": "refused", "FIO_OPT_SOFT_DEPRECATED": "ignored"}
STANDS_ALONE = set()        # filled by collect()
_PREPROCESSOR = re.compile(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", re.M)
_TOKEN = re.compile(r"""
    (?P<space>\s+) | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<char>'(?:[^'\\\n]|\\.)*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*) | (?P<punct>.)
""", re.S | re.X)


def tokens(source):
    """C tokens (kind, text), comments, blanks and preprocessor lines dropped."""
    for m in _TOKEN.finditer(_PREPROCESSOR.sub("", source)):
        if m.lastgroup in ("string", "char", "word", "punct"):
            yield m.lastgroup, m.group()


def c_string(literal):
    return bytes(literal[1:-1], "utf-8").decode("unicode_escape")


def option_arrays(source):
    """Each entry of each `struct fio_option NAME[...] = { ... }` array in a
    C file, as {field: value}: strings joined as C joins adjacent literals,
    other values as their tokens' text."""
    toks = list(tokens(source))
    out = []
    i = 0
    while i < len(toks) - 2:
        if toks[i][1] == "struct" and toks[i + 1][1] == "fio_option" and toks[i + 2][0] == "word":
            j = i + 3
            if j < len(toks) and toks[j][1] == "[":
                while toks[j][1] != "]":
                    j += 1
                if toks[j + 1][1] == "=" and toks[j + 2][1] == "{":
                    entries, i = _entries(toks, j + 3)
                    out.extend(entries)
                    continue
        i += 1
    return out


def _entries(toks, i):
    """The entries of an array whose '{' is just before toks[i]."""
    entries, depth, entry, field, value = [], 1, None, None, []

    def close_field():
        if entry is not None and field is not None:
            strings = [t for k, t in value if k == "string"]
            entry[field] = "".join(c_string(s) for s in strings) if strings else " ".join(t for _k, t in value)

    while depth:
        kind, text = toks[i]
        i += 1
        if text == "{":
            depth += 1
            if depth == 2:
                entry, field, value = {}, None, []
            elif depth > 2 and field is not None:
                value.append((kind, text))
            continue
        if text == "}":
            if depth == 2:
                close_field()
                field = None
                if entry:
                    entries.append(entry)
                entry = None
            elif depth > 2 and field is not None:
                value.append((kind, text))
            depth -= 1
            continue
        if depth != 2:
            if field is not None:
                value.append((kind, text))
            continue
        if text == ",":
            close_field()
            field, value = None, []
        elif text == "." and field is None and toks[i][0] == "word" and toks[i + 1][1] == "=":
            field, value = toks[i][1], []
            i += 2
        elif field is not None:
            value.append((kind, text))
    return entries, i


def git_show(git_dir, tag, path):
    return subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{path}"], check=True, capture_output=True,
                          text=True, errors="replace").stdout


def source_files(git_dir, tag, folder):
    listing = subprocess.run(["git", "-C", git_dir, "ls-tree", "--name-only", tag, folder], check=True,
                             capture_output=True, text=True).stdout.split()
    return sorted(p for p in listing if p.endswith((".c", ".h")))


def _note_bare(entry):
    """fio takes an option without a value only if its type is
    FIO_OPT_STR_SET (a flag) or FIO_OPT_STR without a list of values (parse.c
    __handle_option: any other is "Option X requires an argument")."""
    kind = entry.get("type")
    if kind == "FIO_OPT_STR_SET" or kind == "FIO_OPT_STR" and "posval" not in entry:
        STANDS_ALONE.update([entry["name"]] + [a for a in entry.get("alias", "").split() if a])


def _by_file(git_dir, tag, folder, general):
    """name or alias -> [option name, help, supported, [source files' stems]]
    of the option arrays in folder/*.c, *.h, leaving out names options.c has."""
    out = {}
    for path in source_files(git_dir, tag, folder):
        stem = os.path.splitext(os.path.basename(path))[0]
        for entry in option_arrays(git_show(git_dir, tag, path)):
            name = entry.get("name")
            if not name or name == "NULL":
                continue
            supported = entry.get("type") != "FIO_OPT_UNSUPPORTED"
            _note_bare(entry)
            for spelling in [name] + [a for a in entry.get("alias", "").split() if a]:
                if spelling in general:
                    continue
                known = out.setdefault(spelling, [name, entry.get("help", ""), supported, []])
                if supported and known[2] is False:
                    known[1], known[2] = entry.get("help", ""), True
                if stem not in known[3]:
                    known[3].append(stem)
    return out


def collect(git_dir, tag):
    """(general, engine, profile, deprecated): name or alias -> [option
    name, help, supported, ...], engine and profile ones with [source files'
    stems]; deprecated: option name -> what fio does with it."""
    general, deprecated = {}, {}
    for entry in option_arrays(git_show(git_dir, tag, "options.c")):
        name = entry.get("name")
        if not name or name == "NULL":
            continue
        supported = entry.get("type") != "FIO_OPT_UNSUPPORTED"
        _note_bare(entry)
        if entry.get("type") in DEPRECATED_TYPES:
            deprecated[name] = DEPRECATED_TYPES[entry["type"]]
        for spelling in [name] + [a for a in entry.get("alias", "").split() if a]:
            # the supported side of an #ifdef gives the help text
            if spelling not in general or supported and general[spelling][2] is False:
                general[spelling] = [name, entry.get("help", ""), supported]
    return (general, _by_file(git_dir, tag, "engines/", general), _by_file(git_dir, tag, "profiles/", general),
            deprecated)


def render(general, engine, profile, deprecated, tag):
    lines = [
        f'"""fio {tag.removeprefix("fio-")}\'s option names: generated by scripts/fio_option_names.py from fio\'s',
        f"source at the {tag} tag (options.c's fio_options[], engines/*.c's options[] and",
        "the tiobench and act profiles' options, profiles/*.c, which fio adds to its own at start-up);",
        "do not edit, run the script. fio matches these names exactly (parse.c",
        "o_match: strcmp, case and '_' included). What kit does with each one is",
        'kit.job\'s (FIO_TO_KIT, NO_EFFECT, OUTPUT_ONLY), not this file\'s."""',
        "",
        f"FIO_VERSION = {tag.removeprefix('fio-')!r}",
        "# name or alias -> (the option's name, fio's help text)",
        "GENERAL = " + pprint.pformat({k: (v[0], v[1]) for k, v in sorted(general.items())}, width=116,
                                      sort_dicts=False),
        "# what fio does with its deprecated options (parse.c __handle_option: FIO_OPT_DEPRECATED fails the job,",
        "# FIO_OPT_SOFT_DEPRECATED is taken and ignored), by option name",
        "DEPRECATED = " + pprint.pformat(dict(sorted(deprecated.items())), width=116),
        "# an ioengine's own option -> (its name, fio's help text, the engines/*.c files declaring it)",
        "ENGINE = " + pprint.pformat({k: (v[0], v[1], tuple(v[3])) for k, v in sorted(engine.items())}, width=116,
                                     sort_dicts=False),
        "# the names fio takes without a value (a flag, or a log named after the job); every other bare",
        "# name is fio's \"Option X requires an argument\"",
        "STANDS_ALONE = " + pprint.pformat(frozenset(STANDS_ALONE), width=116),
        "# a profile's option (fio --profile=NAME; a plain job takes it and does nothing with it)",
        "# -> (its name, fio's help text, the profiles/*.c files declaring it)",
        "PROFILE = " + pprint.pformat({k: (v[0], v[1], tuple(v[3])) for k, v in sorted(profile.items())}, width=116,
                                      sort_dicts=False),
        "",
    ]
    return "\n".join(lines)


def main(argv):
    git_dir = argv[1] if len(argv) > 1 else DEFAULT_GIT
    tag = argv[2] if len(argv) > 2 else DEFAULT_TAG
    general, engine, profile, deprecated = collect(git_dir, tag)
    text = render(general, engine, profile, deprecated, tag)
    with open(OUTPUT + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(OUTPUT + ".tmp", OUTPUT)
    print(f"{os.path.relpath(OUTPUT)}: {len(general)} general names, {len(engine)} ioengine option names, "
          f"{len(profile)} profile option names ({tag})")


if __name__ == "__main__":
    main(sys.argv)
