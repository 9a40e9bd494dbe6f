"""Publishing: the store's results become static HTML, one folder per machine.

A report is one notebook in notebooks/: publish finds them there, and each
says in its metadata ("kit") what it is titled, where it goes in the index,
and which of a machine's suites it shows ("engines"; "sweep-*" for one
report per sweep, its name passed as the named parameter; none: always).
Each notebook is executed by papermill with kit's kernel (parameters: the
machine and the store), then exported by nbconvert with input cells hidden
and plots embedded, so a report is one self-contained file. reports/index.html
lists machines (newest first) against notebooks with relative links, so the
folder can be served by any static web server.
"""
import contextlib
import datetime
import html
import os
import re
import sys
import tempfile

from . import __version__, store
from .errors import OptionError, RunError
from .progress import bar
from .files import write_atomic

KERNEL = "kit"
# an inline empty icon: browsers would otherwise fetch /favicon.ico and log a 404
NO_FAVICON = '<link rel="icon" href="data:,">'
NOTEBOOKS_ENV = "KIT_NOTEBOOKS"
# nbconvert's templates load require.js and MathJax from a CDN; a report must
# work offline and without console errors, and none of ours needs either
_REMOTE_SCRIPT = re.compile(r"<script[^>]+src=\"https?://[^\"]+\"[^>]*>\s*</script>", re.S)
_MATHJAX_CONFIG = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def notebooks_dir():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get(NOTEBOOKS_ENV) or os.path.join(here, "notebooks")


def reports_dir(path=None):
    return os.path.abspath(path or "reports")


def ensure_kernel():
    """kit's kernel, registered for this Python if missing (papermill would
    otherwise stop with NoSuchKernel on a fresh machine)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL)
        if os.path.exists(spec.argv[0]):
            return KERNEL
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install
    install(kernel_name=KERNEL, display_name="kit (.venv)", prefix=sys.prefix)
    return KERNEL


@contextlib.contextmanager
def _kernel_stderr_quiet():
    """The kernel inherits our stderr and fills it with ipykernel's transport
    warnings; cell errors reach us as exceptions anyway."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def execute(notebook, parameters, cwd=None):
    """Runs one notebook with papermill; returns the executed notebook node.
    A failing cell becomes a RunError with the cell's one-line message."""
    import papermill as pm
    path = os.path.join(notebooks_dir(), f"{notebook}.ipynb")
    if not os.path.exists(path):
        raise OptionError("notebook", f"{notebook}: no {path}")
    with tempfile.TemporaryDirectory(prefix="kit-nb-") as tmp:
        out = os.path.join(tmp, f"{notebook}.ipynb")
        kernel = ensure_kernel()
        try:
            with _kernel_stderr_quiet():
                return pm.execute_notebook(path, out, parameters=parameters, kernel_name=kernel,
                                           progress_bar=False, cwd=cwd or os.getcwd(), log_output=False)
        except pm.PapermillExecutionError as e:
            raise RunError(f"notebook {notebook}: {e.ename}: {e.evalue}") from None


def export_html(nb, title=None, machine=None):
    """The executed notebook as one self-contained page: its own title (not
    nbconvert's "Notebook"), and a link back to the index."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    name = f"{title} · {machine}" if title and machine else (title or "kit report")
    body, _resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    body = _MATHJAX_CONFIG.sub("", body)
    body = _REMOTE_SCRIPT.sub("", body)
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(name)}</title>", body, count=1, flags=re.S)
    back = ('<p class="kit-nav" style="margin:1em 2em"><a href="../index.html">← all machines and reports</a></p>')
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + back, body, count=1)
    return body.replace("<head>", "<head>\n" + NO_FAVICON, 1)


def notebooks():
    """{name: its "kit" metadata} of every report notebook, in index order."""
    import json
    found = {}
    folder = notebooks_dir()
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".ipynb") or f.startswith("."):
            continue
        with open(os.path.join(folder, f)) as fh:
            meta = json.load(fh).get("metadata", {}).get("kit")
        if isinstance(meta, dict) and meta.get("title"):
            found[f[:-len(".ipynb")]] = meta
    return dict(sorted(found.items(), key=lambda kv: (kv[1].get("order", 99), kv[0])))


def report_names(machine, data=None):
    """(notebook, parameters, file name) for what a machine's store holds."""
    suites = sorted(_suites(machine, data))
    out = []
    for name, meta in notebooks().items():
        wanted = meta.get("suite")
        if not wanted:
            out.append((name, {}, name))
        elif wanted.endswith("*"):
            prefix = wanted[:-1]
            out += [(name, {meta["parameter"]: s[len(prefix):]}, s) for s in suites if s.startswith(prefix)]
        elif wanted in suites:
            out.append((name, {}, name))
    return out


def _suites(machine, data):
    folder = store.machine_dir(data, machine)
    return [d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))] if os.path.isdir(folder) else []


def publish(data=None, reports=None, machines=None, progress=None, notebooks=None):
    """Executes and exports every report of every machine in the store (or of
    those named); writes the index. Returns the written report paths."""
    data, reports = store.data_dir(data), reports_dir(reports)
    known = store.machines(data)
    if machines:
        missing = [m for m in machines if m not in {k["name"] for k in known}]
        if missing:
            raise OptionError("machine", f"{missing[0]} has no machine.json in {data}")
        known = [k for k in known if k["name"] in machines]
    for m in known:
        store.load(m["name"], data=data)     # says here, once, which stored files the reports will skip
    work = [(m["name"], nb, params, name) for m in known for nb, params, name in report_names(m["name"], data)
            if not notebooks or nb in notebooks]
    written = []
    with bar(total=len(work), label="publish", unit="report", enabled=progress) as b:
        for i, (machine, nb, params, name) in enumerate(work, 1):
            executed = execute(nb, {"machine": machine, "data_dir": data, **params})
            folder = os.path.join(reports, store.safe_name(machine))
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{name}.html")
            write_atomic(path, export_html(executed, _title(name), machine))
            written.append(path)
            b.update_to(i)
    write_index(reports, data)
    return written


def write_index(reports=None, data=None):
    """reports/index.html: machines, newest first, against their reports."""
    reports = reports_dir(reports)
    os.makedirs(reports, exist_ok=True)
    rows = []
    for m in store.machines(data, quiet=True):
        folder = os.path.join(reports, store.safe_name(m["name"]))
        pages = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".html")) if os.path.isdir(folder) else []
        fp = m["fingerprint"]
        dev = ((fp.get("target") or {}).get("device") or {})
        when = datetime.datetime.fromtimestamp(m["newest"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") \
            if m["newest"] else "-"
        links = " · ".join(f"<a href=\"{html.escape(store.safe_name(m['name']))}/{html.escape(p)}.html\">"
                           f"{html.escape(_title(p))}</a>" for p in _ordered(pages)) or "<i>not published</i>"
        rows.append(f"<tr><td><b>{html.escape(m['name'])}</b></td><td>{html.escape(when)}</td>"
                    f"<td>{html.escape(str((fp.get('kernel') or {}).get('release', '?')))}</td>"
                    f"<td>{html.escape(str((fp.get('cpu') or {}).get('model', '?')))} "
                    f"x{html.escape(str((fp.get('cpu') or {}).get('count', '?')))}</td>"
                    f"<td>{html.escape(str(dev.get('name', '-')))} {html.escape(str(dev.get('kind', '')))}</td>"
                    f"<td>{m['results']}</td><td>{links}</td></tr>")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kit reports</title>{NO_FAVICON}
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 6px 12px; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ background: #f4f4f4; }}
</style></head><body>
<h1>kit reports</h1>
<p>One row per machine, newest results first. Published {html.escape(now)} by kit {html.escape(__version__)}.</p>
<table><tr><th>machine</th><th>newest result</th><th>kernel</th><th>CPU</th><th>device</th><th>results</th>
<th>reports</th></tr>
{chr(10).join(rows) if rows else '<tr><td colspan="7"><i>no machines in the store yet: run kit report</i></td></tr>'}
</table></body></html>
"""
    path = os.path.join(reports, "index.html")
    write_atomic(path, page)
    return path


def _page_notebook(page):
    """(notebook name, its metadata, the parameter's value) a page came from."""
    for name, meta in notebooks().items():
        wanted = meta.get("suite") or ""
        if page == name and not wanted.endswith("*"):
            return name, meta, None
        if wanted.endswith("*") and page.startswith(wanted[:-1]):
            return name, meta, page[len(wanted) - 1:]
    return None, {}, None


def _ordered(pages):
    order = list(notebooks())
    return sorted(pages, key=lambda p: (order.index(_page_notebook(p)[0]) if _page_notebook(p)[0] in order
                                        else 99, p))


def _title(page):
    _name, meta, value = _page_notebook(page)
    title = meta.get("title", page)
    return f"{title} {value}" if value is not None else title

