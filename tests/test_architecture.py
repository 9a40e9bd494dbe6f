"""kit's shape, held by tests: layers import only downward (function-level
imports count: a circle held together by lazy imports is still a circle),
each option is declared once, and a new engine or tracer is picked up from
its own files without editing a list elsewhere."""
import ast
import os

import pytest

from conftest import REPO

PACKAGE = os.path.join(REPO, "kit")

# The picture of ../shared/design.md: a module imports only from its own
# level or lower.
LAYERS = {
    0: {"errors", "hist", "progress", "stats", "signals"},
    1: {"host", "files"},
    2: {"machine", "safety", "options", "job", "engines", "text", "fio_names"},
    3: {"target", "results", "tracers", "seed", "logs"},
    4: {"runner", "fio", "net"},
    5: {"api", "store", "sweep", "doctor", "compare"},
    6: {"notebook", "suites", "publish"},
    7: {"cli", "command"},
}
LAYER = {name: level for level, names in LAYERS.items() for name in names}


def _modules():
    """{dotted module: path} of every module in kit/ (the package __init__
    only re-exports lazily and is left out)."""
    out = {}
    for root, _dirs, files in os.walk(PACKAGE):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
            if rel == "kit.__init__":
                continue
            out[rel.removesuffix(".__init__")] = os.path.join(root, f)
    return out


def _imports(module, path):
    """kit modules this module imports, anywhere in its body."""
    package = module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kit.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("kit"):
                continue
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != module}


MODULES = _modules()
GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _unit(module):
    """The layer table's name for a module: kit.engines.io_uring -> engines."""
    return module.split(".")[1]


def test_every_module_has_a_layer():
    assert {_unit(m) for m in MODULES} <= set(LAYER), sorted({_unit(m) for m in MODULES} - set(LAYER))


def test_no_import_circles():
    def visit(node, path):
        if node in path:
            return path[path.index(node):] + [node]
        for nxt in sorted(GRAPH[node]):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        return None
    for m in sorted(GRAPH):
        cycle = visit(m, [])
        assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    upward = sorted(m for m in GRAPH[module] if LAYER[_unit(m)] > LAYER[_unit(module)])
    assert not upward, f"{module} (layer {LAYER[_unit(module)]}) imports " + ", ".join(
        f"{m} (layer {LAYER[_unit(m)]})" for m in upward)


def test_jobs_and_job_files_need_no_compiled_library(tmp_path):
    """Without kit's C engines (not built yet, or built for another Python),
    options, Jobs and fio job files still work: only running needs them."""
    import subprocess
    import sys
    (tmp_path / "j.fio").write_text("[global]\nioengine=io_uring\nfixedbufs\n[a]\nrw=randread\nbs=4k\n")
    code = ("import sys; sys.modules['kit.engines._native'] = None\n"
            "import kit, kit.fio\n"
            "job = kit.Job(ioengine='io_uring', sqthread_poll=True, bs='8k')\n"
            "f = kit.fio.read_job_file(sys.argv[1])\n"
            "print(job.label, job.on('registerfiles'), f.jobs[0].label, kit.fio.to_fio_file(job).count('['))\n"
            "import kit.engines\n"
            "try:\n    kit.engines.native()\nexcept kit.RunError as e:\n    print('native:', e)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "j.fio")], capture_output=True, text=True,
                       cwd=REPO)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "io_uring+sqthread_poll True io_uring+fixedbufs 1"
    assert lines[1].startswith("native: kit's C engines are not built") and "make setup" in lines[1]


def test_an_engines_options_are_declared_beside_it():
    """Every engine is a C (or C++) file, a registry line and a Python module
    of its own; its options live there and nowhere else (an option two
    engines declare alike belongs to both)."""
    from kit.engines import HERE, engine, engine_names
    from kit.job import OPTIONS
    from kit.options import COMMON
    names = engine_names()
    assert set(names) == {os.path.splitext(p)[0] for p in os.listdir(HERE)
                          if p.endswith((".c", ".cpp")) and os.path.exists(os.path.join(HERE, os.path.splitext(p)[0] + ".py"))}
    own = {}
    for name in names:
        for o in engine(name).OPTIONS:
            own.setdefault(o.name, []).append(name)
    assert {n: OPTIONS[n].engines for n in own} == {n: tuple(e) for n, e in own.items()}
    assert own["threads"] == ["threadpool", "asio"]
    assert set(OPTIONS) == {o.name for o in COMMON} | set(own)
    # every engine option that sets a C field names one that exists
    with open(os.path.join(HERE, "kit.h")) as fh:
        header = fh.read()
    for n in own:
        if OPTIONS[n].param:
            assert f" {OPTIONS[n].param};" in header, n


def test_every_tracer_is_one_module_behind_one_protocol():
    from kit import tracers
    folder = os.path.dirname(tracers.__file__)
    modules = {f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_")}
    assert modules == set(tracers.TRACERS)          # one table lists them all, nothing else does
    for name, module in tracers.TRACERS.items():
        assert module.NAME == name and isinstance(module.WANTS, str) and isinstance(module.FRAME, str)
        for function in ("tracepoints", "complete", "bpf_text", "read", "summary", "frames", "text"):
            assert callable(getattr(module, function, None)), (name, function)


def test_the_c_registry_and_the_python_names_agree():
    """registry.c's list (what Python reads as text) and the compiled
    engines' own names (each engine's struct) are the same, in order."""
    from kit.engines import engine_names, registry
    assert tuple(registry()) == engine_names()
