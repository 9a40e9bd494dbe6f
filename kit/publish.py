"""Publishing: the store's results become static HTML, one folder per machine.

A report is one notebook in notebooks/: publish finds them there, and each
says in its metadata ("kit") what it is titled, where it goes in the index,
and which of a machine's suites it shows ("engines"; "sweep-*" for one
report per sweep, its name passed as the named parameter; a list of these
for a notebook that shows several; none: always),
whether it is one page for the whole store ("scope": "store") rather than
one per machine, and that it has no plots ("plots": false, for the tests).
Each notebook is executed by papermill with kit's kernel (parameters: the
machine and the store), then exported by nbconvert with input cells hidden
and plots embedded, so a report is one self-contained file; a few pages at
once (PAGES_AT_ONCE). reports/index.html
lists machines (newest first) against notebooks with relative links, so the
folder can be served by any static web server. A page whose inputs did not
change since kit wrote it is kept (see inputs_key).
"""
import contextlib
import datetime
import errno
import fcntl
import hashlib
import html
import json
import os
import re
import stat
import sys
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import __version__, store
from .errors import OptionError, RunError
from .progress import bar
from .files import read_json, replace_at

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


_quiet_lock = threading.Lock()
_quiet = {"depth": 0, "saved": None}


@contextlib.contextmanager
def _kernel_stderr_quiet():
    """Our stderr (fd 2) into a sink while pages execute: the kernels inherit
    it and fill it with ipykernel's transport warnings, and papermill logs
    what it says on the way (a kernel that died, one killed by Ctrl-C); a
    cell's error reaches us as an exception anyway. Held by publish for all
    its pages at once and by execute for one, from any thread: the first in
    redirects, the last out restores."""
    with _quiet_lock:
        if not _quiet["depth"]:
            sys.stderr.flush()
            sink = tempfile.TemporaryFile()
            _quiet["saved"] = os.dup(2)
            os.dup2(sink.fileno(), 2)
            sink.close()            # fd 2 keeps it open, until restored
        _quiet["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["depth"] -= 1
            if not _quiet["depth"]:
                sys.stderr.flush()
                os.dup2(_quiet["saved"], 2)
                os.close(_quiet["saved"])


@contextlib.contextmanager
def _terminal():
    """Our stderr as it is now, a file of its own (None if there is none):
    the progress bar's, which _kernel_stderr_quiet leaves alone."""
    try:
        fd = os.dup(2)
    except OSError:
        yield None
        return
    with os.fdopen(fd, "w") as f:
        yield f


class _Kernels:
    """The kernels of the pages publish is executing, all killed at once by
    stop(): Ctrl-C reaches only the main thread, and a thread executing a
    page cannot be interrupted, but its kernel can (the page is discarded;
    its thread ends within a second, when nbclient sees the kernel dead)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running, self._stopped = [], False

    def manager(self, sockets):
        """A kernel manager class for papermill (nbclient's kernel_manager_class)
        whose kernel listens on Unix sockets in the folder sockets: TCP ports
        jupyter_client found free can be taken before the kernel binds them
        (by any program's outgoing connection), and that kernel dies at
        start-up -- likelier with pages starting kernels at once."""
        from jupyter_client.manager import AsyncKernelManager
        kernels = self

        prefix = os.path.join(sockets, "kernel")
        # a Unix socket's path holds at most 107 bytes (and jupyter adds
        # "-<n>"): under a longer TMPDIR the kernel keeps TCP
        ipc = len(os.fsencode(prefix)) + 8 <= UNIX_PATH_MAX

        class PageKernel(AsyncKernelManager):
            def __init__(self, **kw):
                super().__init__(**kw)
                if ipc:
                    self.transport, self.ip = "ipc", prefix

            async def start_kernel(self, **kw):
                await super().start_kernel(**kw)
                kernels._started(self.provisioner.process)
        return PageKernel

    @property
    def stopped(self):
        with self._lock:
            return self._stopped

    def _started(self, process):
        with self._lock:
            if not self._stopped:
                self._running.append(process)
                return
        process.kill()          # stop() came while this kernel was starting

    def stop(self):
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            process.kill()      # one that has ended is left alone (Popen knows it ended)


UNIX_PATH_MAX = 107         # sun_path's 108 bytes, the last a NUL

# A kernel that died before it answered (before any cell ran) is started
# again, this many times; not once Ctrl-C stopped the pages (that kills them).
KERNEL_START_RETRIES = 1


def _died_starting(e):
    return isinstance(e, RuntimeError) and "before replying to kernel_info" in str(e)


def execute(notebook, parameters, cwd=None, kernels=None):
    """Runs one notebook with papermill; returns the executed notebook node.
    A failing cell becomes one line: an OptionError when the notebook refused
    its parameters, a RunError otherwise (the kernel died, a cell failed).
    kernels: publish's _Kernels, which this page's kernel joins (one of its own by default)."""
    import papermill as pm
    path = os.path.join(notebooks_dir(), f"{notebook}.ipynb")
    if not os.path.exists(path):
        raise OptionError("notebook", f"{notebook}: no {path}")
    kernels = kernels or _Kernels()
    with tempfile.TemporaryDirectory(prefix="kit-nb-") as tmp:
        out = os.path.join(tmp, f"{notebook}.ipynb")
        kernel = ensure_kernel()
        for attempt in range(1 + KERNEL_START_RETRIES):
            try:
                with _kernel_stderr_quiet():
                    return pm.execute_notebook(path, out, parameters=parameters, kernel_name=kernel,
                                               progress_bar=False, cwd=cwd or os.getcwd(), log_output=False,
                                               kernel_manager_class=kernels.manager(tmp))
            except pm.PapermillExecutionError as e:
                bad_input, why = e.ename == "ParameterError", f"{e.ename}: {e.evalue}"
            except Exception as e:
                # papermill's and nbclient's own errors (a dead kernel, a cell's
                # timeout), and what starting a kernel raises from below them:
                # jupyter_client's RuntimeError "Kernel died before replying to
                # kernel_info", its TimeoutError, zmq's ZMQError, Popen's OSError
                bad_input, why = False, f"{type(e).__name__}: {e}"
                if _died_starting(e) and attempt < KERNEL_START_RETRIES and not kernels.stopped:
                    continue        # no cell ran: a fresh kernel runs the page as the first would have
            break
    line = f"notebook {notebook}: " + " ".join(why.split())
    # the notebook's own check of its parameters (kit.notebook.ParameterError) is bad input
    raise OptionError(None, line) if bad_input else RunError(line)


def export_html(nb, title=None, machine=None, index="../index.html"):
    """The executed notebook as one self-contained page: its own title (not
    nbconvert's "Notebook"), and a link back to the index."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    name = f"{title} · {machine}" if title and machine else (title or "kit report")
    body, _resources = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    body = _MATHJAX_CONFIG.sub("", body)
    body = _REMOTE_SCRIPT.sub("", body)
    body = re.sub(r"<title>.*?</title>", f"<title>{html.escape(name)}</title>", body, count=1, flags=re.S)
    back = (f'<p class="kit-nav" style="margin:1em 2em"><a href="{html.escape(index)}">← all machines and reports</a></p>')
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + back, body, count=1)
    return body.replace("<head>", "<head>\n" + GENERATOR + NO_FAVICON, 1)


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
        if meta.get("scope") == "store" or (meta.get("when") == "history" and not store.has_history(machine, data)):
            continue        # a page over the whole store; a history page waits for a second run
        for wanted in _wanted(meta):
            if not wanted:
                out.append((name, {}, name))
            elif wanted.endswith("*"):
                prefix = wanted[:-1]
                out += [(name, {meta["parameter"]: s[len(prefix):]}, s) for s in suites if s.startswith(prefix)]
            elif wanted in suites and (name, {}, name) not in out:     # one page for several of its suites
                out.append((name, {}, name))
    return out


def _wanted(meta):
    """The suites a notebook's metadata names: one, a list, or none ([None])."""
    wanted = meta.get("suite")
    return list(wanted) if isinstance(wanted, list) else [wanted]


def _suites(machine, data):
    folder = store.machine_dir(data, machine)
    return [d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))] if os.path.isdir(folder) else []


def publish(data=None, reports=None, machines=None, progress=None, notebooks=None, force=False):
    """Executes and exports every report of every machine in the store (or of
    those named), and the store-wide ones; writes the index. A page whose
    inputs (inputs_key) are those of the page kit last wrote there, unchanged
    since, is kept; force=True renders every page again. Pages are written
    only once all have rendered: a failure leaves reports/ as it was.
    Returns a Published list of every page's path (.rendered, .reused)."""
    data, reports = store.data_dir(data), reports_dir(reports)
    if not os.path.isdir(data):
        # a mistyped store would otherwise publish "no machines" and take every
        # page it had published away as no longer applying
        what = "is not a directory" if os.path.exists(data) else "does not exist"
        raise OptionError("data", f"{data} {what}: give the store kit measured into (nothing was published)")
    known = store.machines(data)
    if not known and _machine_pages(reports):
        raise OptionError("data", f"{data} holds no machine's results, but {reports} has pages published from a "
                                  "store that had some: give that store (nothing was published or removed)")
    if machines:
        missing = [m for m in machines if m not in {k["name"] for k in known}]
        if missing:
            raise OptionError("machine", f"{missing[0]} has no machine.json in {data}")
        known = [k for k in known if k["name"] in machines]
    for m in known:
        store.load(m["name"], data=data)     # says here, once, which stored files the reports will skip
    work = [p for p in pages(known, data, reports) if not notebooks or p.notebook in notebooks]
    done = Published()
    with _locked(reports) as (folder_fd, written):
        for path in [page.path for page in work] + [os.path.join(reports, "index.html")]:
            _check_ours(path)
        kit = kit_digest()
        digests, todo = {}, []
        for page in work:
            folder = page.reads(data)
            if folder not in digests:
                digests[folder] = tree_digest(folder)
            key = inputs_key(page, kit, digests[folder])
            if not force and _unchanged(page.path, written.get(_relative(page.path, reports)), key):
                done.reused.append(page.path)
            else:
                todo.append((page, key))
            done.append(page.path)
        with _terminal() as terminal, bar(total=len(work), label="publish", unit="report", enabled=progress,
                                          file=terminal) as b:
            b.update_to(len(done.reused))
            texts = _render([page for page, _key in todo], lambda n: b.update_to(len(done.reused) + n))
        fresh = [(page, key, text) for (page, key), text in zip(todo, texts)]
        try:
            for page, key, text in fresh:
                # rendering took a while: the places are checked again as they are written
                raw = text.encode()
                _write_ours(folder_fd, _relative(page.path, reports), raw, reports)
                written[_relative(page.path, reports)] = {"inputs": key, "sha256": hashlib.sha256(raw).hexdigest()}
                done.rendered.append(page.path)
            if not machines and not notebooks:
                _remove_stale(folder_fd, reports, written, {page.path for page in work}, done)
        finally:
            _save_written(folder_fd, reports, written)
        write_index(reports, data, folder_fd)
    return done


# Pages are executed this many at a time (one per CPU, up to 4), each in a
# kernel of its own: the pages are CPU-bound. Two at once on 2 CPUs made the
# quick report's five pages 29 s -> 17 s. A kernel that died at start-up
# (seen once in a full test run with TCP ports) is started again (execute).
PAGES_AT_ONCE = max(1, min(4, len(os.sched_getaffinity(0))))


def _render(pages, advance):
    """Each Page executed and exported, PAGES_AT_ONCE at a time; their HTML,
    in order. advance(n) as each has rendered. As if one after the other:
    once a page fails no other starts, the pages still running end, and the
    error raised is that of the first page, in order, that failed. Ctrl-C
    (or any exception here) kills the kernels running and raises once
    their threads have ended."""
    kernels, texts, failed, rendered = _Kernels(), [None] * len(pages), {}, 0
    if not pages:
        return texts
    import papermill    # noqa: F401 -- seconds: here Ctrl-C stops it at once, in a thread it would not
    ensure_kernel()     # once, before threads would race to register it

    def render(page):
        executed = execute(page.notebook, page.parameters, kernels=kernels)
        return export_html(executed, _title(page.name), page.machine, index=page.index_link)
    waiting, running = list(range(len(pages))), {}
    with ThreadPoolExecutor(max_workers=min(PAGES_AT_ONCE, len(pages)), thread_name_prefix="kit-publish") as pool:
        try:
            while running or (waiting and not failed):
                while waiting and not failed and len(running) < PAGES_AT_ONCE:
                    i = waiting.pop(0)
                    running[pool.submit(render, pages[i])] = i
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    if future.exception() is not None:
                        failed[i] = future.exception()
                    else:
                        texts[i], rendered = future.result(), rendered + 1
                        advance(rendered)
        except BaseException:
            kernels.stop()
            wait(running)
            raise
    if failed:
        raise failed[min(failed)]
    return texts


def _machine_pages(reports):
    """Whether kit's record of what it wrote in reports/ lists a machine's page."""
    written = _load_written(reports) if os.path.isdir(reports) else {}
    return any(os.sep in rel and rel.endswith(".html") for rel in written)


def _remove_stale(folder_fd, reports, written, current, done):
    """Pages kit wrote that no longer apply (a sweep or a machine gone from
    the store, a notebook removed): deleted, so the index stops linking
    them -- only a page where kit writes pages (reports/<page>.html or
    reports/<machine>/<page>.html, no link on the way), carrying kit's mark,
    and still exactly what kit wrote; a page someone edited is theirs now
    and stays. The record itself is only a claim (anyone can write one):
    whatever it names elsewhere is never touched."""
    for rel, entry in sorted(written.items()):
        path = os.path.join(reports, rel)
        if path in current or not rel.endswith(".html") or rel == "index.html":
            continue
        del written[rel]
        with contextlib.suppress(OSError), _opened_folder(folder_fd, rel, make=False) as (fd, name):
            if fd is not None and _ours_at(fd, name) and _digest_at(fd, name) == entry.get("sha256"):
                os.unlink(name, dir_fd=fd)
                done.removed.append(path)


def _page_place(rel):
    """(folders, file name) of a place kit writes pages at, relative to
    reports/: <page>.html or <machine>/<page>.html; None for anything else."""
    parts = rel.split("/")
    if not 1 <= len(parts) <= 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return parts[:-1], parts[-1]


@contextlib.contextmanager
def _opened_folder(folder_fd, rel, make):
    """(descriptor of the folder rel is in, file name), every folder opened
    without following a link (made when make); (None, None) when rel is not
    a page's place or its folder is missing, a file or a link."""
    place = _page_place(rel)
    if place is None:
        yield None, None
        return
    folders, name = place
    fd, opened = folder_fd, []
    try:
        for folder in folders:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, 0o755, dir_fd=fd)
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
                fd = None
            if fd is None:
                break
            opened.append(fd)
        yield fd, name
    finally:
        for f in opened:
            os.close(f)


def _write_ours(folder_fd, rel, raw, reports):
    """Writes a page (or the index) at rel in reports/ (folder_fd), as it is
    now: only into folders that are not links, and only over a page kit
    wrote. RunError otherwise (something was put there while pages rendered)."""
    path = os.path.join(reports, rel)
    try:
        with _opened_folder(folder_fd, rel, make=True) as (fd, name):
            if fd is None:
                raise RunError(f"{os.path.dirname(path)} is no longer a folder kit made (a file or a link was put "
                               f"there while the pages rendered); {path} was not written: move it away")
            if not _ours_at(fd, name, missing=True):
                raise RunError(f"{path} was put there while the pages rendered and was not written by kit; kit "
                               "did not replace it: move it away")
            replace_at(fd, name, raw)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e.strerror}") from None


def _ours_at(fd, name, missing=False):
    """Whether the entry name in the folder fd is a page or index kit wrote
    (a regular file carrying kit's mark, not a link); missing: what to say
    when there is no such entry."""
    try:
        if not stat.S_ISREG(os.lstat(name, dir_fd=fd).st_mode):
            return False            # a link, a FIFO, a device: never opened
        f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    except FileNotFoundError:
        return missing
    except OSError:
        return False
    with os.fdopen(f, "rb") as fh:
        return stat.S_ISREG(os.fstat(f).st_mode) and _carries_mark(fh)


def _digest_at(fd, name):
    with os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd),
                   "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


class Published(list):
    """Every page publish() made current, in order; .rendered were executed
    and written this time, .reused kept as they were; .removed are pages kit
    had written that no longer apply."""

    def __init__(self):
        super().__init__()
        self.rendered, self.reused, self.removed = [], [], []


class Page:
    """One page to publish: a notebook run with parameters for one machine
    (machine None: a page over the whole store, metadata "scope": "store")."""

    def __init__(self, machine, notebook, parameters, name, path, notebook_path):
        self.machine, self.notebook, self.parameters = machine, notebook, parameters
        self.name, self.path, self.notebook_path = name, path, notebook_path

    @property
    def index_link(self):
        return "../index.html" if self.machine else "index.html"

    def reads(self, data):
        """The store folder this page's notebook reads."""
        return store.machine_dir(data, self.machine) if self.machine else data


def pages(machines, data, reports):
    """The Pages of these machines (store.machines() entries) and of the store."""
    out = []
    folder = notebooks_dir()
    across = len(store.machines(data, quiet=True)) >= 2        # a page across machines needs two
    for name, meta in notebooks().items():
        if meta.get("scope") == "store" and across:
            out.append(Page(None, name, {"data_dir": data}, name, os.path.join(reports, f"{name}.html"),
                            os.path.join(folder, f"{name}.ipynb")))
    for m in machines:
        for nb, params, name in report_names(m["name"], data):
            out.append(Page(m["name"], nb, {"machine": m["name"], "data_dir": data, **params}, name,
                            os.path.join(reports, store.safe_name(m["name"]), f"{name}.html"),
                            os.path.join(folder, f"{nb}.ipynb")))
    return out


# ---- what a page is made of, and whether the page there is kit's -----------------
#
# A page's key is a digest of everything its HTML depends on: the notebook's
# bytes, kit (its version, its Python sources, the C engines' source hash,
# the libraries that execute and draw it), the parameters, and the bytes of
# every store file the notebook can read (its machine's folder; the whole
# store for a store-wide page). Bytes rather than (size, mtime, inode):
# file times tick at the kernel's clock (a result rewritten in place within
# the same few milliseconds, at the same size, keeps its mtime), and reading
# a store is quick next to executing one notebook.
#
# Which files in reports/ are kit's: those carrying GENERATOR (and the pages
# and index of kits from before it, by their own back link and heading). kit
# writes over those only. reports/.kit-reports.json records, for each file
# kit wrote, its key and a digest of its bytes: a page is reused only when it
# still has those bytes, so a page edited, or copied in from elsewhere, is
# rendered again rather than trusted.

WRITTEN_FILE = ".kit-reports.json"
WRITTEN_VERSION = 1
_LIBRARIES = ("papermill", "nbconvert", "nbclient", "ipykernel", "pandas", "numpy", "matplotlib", "seaborn", "pillow")


def kit_digest(package=None):
    """kit as the pages see it: its version, the sources of the Python
    package (any module a notebook calls can change a page; package: its
    folder, this kit's by default), the C engines' source hash, Python's and
    the rendering libraries' versions."""
    from importlib import metadata
    from .engines.sources import source_hash
    h = hashlib.sha256(f"{__version__}\0{source_hash()}\0{sys.version}\0".encode())
    for lib in _LIBRARIES:
        try:
            h.update(f"{lib}={metadata.version(lib)}\0".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}=none\0".encode())
    package = package or os.path.dirname(os.path.abspath(__file__))
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(root, f)
                with open(path, "rb") as fh:
                    h.update(os.path.relpath(path, package).encode() + b"\0" + fh.read() + b"\0")
    return h.hexdigest()


def tree_digest(folder):
    """A digest of every file under folder (names and bytes, following
    symbolic links as the store's readers do, each directory once). Names
    beginning with '.' are skipped: the store never reads such files (they
    are temporary files of writes under way); folders beginning with '.'
    (a suite's .history) are read and count."""
    h = hashlib.sha256()
    seen = set()

    def walk(path, rel):
        try:
            entries = sorted(os.listdir(path))
        except OSError as e:
            h.update(f"{rel}\0unreadable {e.errno}\0".encode())
            return
        for name in entries:
            full, sub = os.path.join(path, name), f"{rel}/{name}"
            try:
                st = os.stat(full)
            except OSError as e:
                h.update(f"{sub}\0missing {e.errno}\0".encode())
                continue
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    h.update(f"{sub}/\0".encode())
                    walk(full, sub)
            elif name.startswith("."):
                continue
            else:
                h.update(f"{sub}\0".encode() + _file_digest(full) + b"\0")
    if os.path.isdir(folder):
        seen.add((os.stat(folder).st_dev, os.stat(folder).st_ino))
        walk(folder, "")
    return h.hexdigest()


def _file_digest(path):
    """The bytes of a regular file, hashed; anything else (a FIFO, a device:
    never opened to read, they could block or never end) by its kind."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return f"unreadable {e.errno}".encode()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return f"not a file {stat.S_IFMT(st.st_mode)}".encode()
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.digest()
    except OSError as e:
        return f"unreadable {e.errno}".encode()
    finally:
        os.close(fd)


def inputs_key(page, kit, store_digest):
    """The digest of everything the page's HTML depends on."""
    h = hashlib.sha256(f"{kit}\0{store_digest}\0".encode())
    h.update(json.dumps([page.name, page.machine, page.parameters], sort_keys=True, default=str).encode())
    with open(page.notebook_path, "rb") as fh:
        h.update(b"\0" + fh.read())
    return h.hexdigest()


def _relative(path, reports):
    return os.path.relpath(path, reports)


@contextlib.contextmanager
def _locked(reports):
    """reports/ held exclusively (two publishes into one folder take turns):
    its descriptor, and the record of what kit wrote there. A reports folder this call
    made is removed again if nothing was written into it."""
    made = not os.path.isdir(reports)
    if made:
        os.makedirs(reports)
    fd = os.open(reports, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd, _load_written(reports)
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(reports)
        raise
    finally:
        os.close(fd)


def _load_written(reports):
    path = os.path.join(reports, WRITTEN_FILE)
    if not os.path.lexists(path):
        return {}
    try:
        doc = read_json(path, limit=16 << 20)
    except ValueError as e:
        raise OptionError("reports", f"{path}: {e}; move it away (kit then treats the pages there as not its own)") \
            from None
    files = doc.get("files") if isinstance(doc, dict) and doc.get("version") == WRITTEN_VERSION else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        raise OptionError("reports", f"{path} is not kit's record of the pages it wrote; move it away")
    return files


def _save_written(folder_fd, reports, written):
    replace_at(folder_fd, WRITTEN_FILE, (json.dumps({"version": WRITTEN_VERSION, "files": written}, indent=1,
                                                    sort_keys=True) + "\n").encode())


def _unchanged(path, entry, key):
    """The page at path is the one kit wrote from these inputs, as written."""
    if not entry or entry.get("inputs") != key or not os.path.isfile(path) or os.path.islink(path):
        return False
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest() == entry.get("sha256")


GENERATOR = '<meta name="generator" content="kit">'
_KITS_MARKS = (GENERATOR.encode(), b'<p class="kit-nav"', b"<h1>kit reports</h1>")


def check_writable(reports, machine, data=None):
    """Before measuring (kit report, kit sweep): the index and every page kit
    may publish for machine are kit's or absent, so a file kit would refuse
    to replace stops the command before the store is written."""
    reports = reports_dir(reports)
    folder = os.path.join(reports, store.safe_name(machine))
    _check_folder(folder)
    # the index, the pages across machines, and the machine's own pages
    paths = [os.path.join(reports, "index.html")]
    if len({m["name"] for m in store.machines(data, quiet=True)} | {store.safe_name(machine)}) >= 2:
        paths += [os.path.join(reports, f"{nb}.html") for nb, meta in notebooks().items()
                  if meta.get("scope") == "store"]
    if os.path.isdir(folder):
        paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                  if f.endswith(".html") and _page_notebook(f[:-len(".html")])[0]]
    for path in paths:
        _check_ours(path)
    if os.path.isdir(reports):
        _load_written(reports)          # a damaged record stops publish: say so before measuring


def _check_folder(folder):
    if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
        raise OptionError("reports", f"{folder} is not a folder kit made (a file or a link); move it away")


def _check_ours(path):
    """A file kit would write at path: nothing is there, or a page or index
    kit wrote (whatever happened to it since), in a folder (not a link).
    OptionError otherwise, before anything is rendered."""
    _check_folder(os.path.dirname(path))
    if not os.path.lexists(path):
        return
    if os.path.isfile(path) and not os.path.islink(path):
        with open(path, "rb") as fh:
            if _carries_mark(fh):
                return
    raise OptionError("reports", f"{path} was not written by kit; kit never overwrites what it did not write: "
                                 "move it away")


def _carries_mark(fh):
    head = fh.read(4 << 20)
    return any(mark in head for mark in _KITS_MARKS)


def write_index(reports=None, data=None, folder_fd=None):
    """reports/index.html: machines, newest first, against their reports.
    folder_fd: reports/ as publish holds it open."""
    reports = reports_dir(reports)
    os.makedirs(reports, exist_ok=True)
    rows = []
    everywhere = store.machines(data, quiet=True)
    across = " · ".join(f'<a href="{html.escape(nb)}.html">{html.escape(meta["title"])}</a>'
                        for nb, meta in notebooks().items() if meta.get("scope") == "store"
                        and len(everywhere) >= 2 and os.path.isfile(os.path.join(reports, f"{nb}.html")))
    across = f"<p>Across machines: {across}</p>" if across else ""
    for m in everywhere:
        folder = os.path.join(reports, store.safe_name(m["name"]))
        pages = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".html")) if os.path.isdir(folder) else []
        fp = m["fingerprint"]
        dev = ((fp.get("target") or {}).get("device") or {})
        when = datetime.datetime.fromtimestamp(m["newest"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") \
            if m["newest"] else "-"
        links = " · ".join(f"<a href=\"{html.escape(store.safe_name(m['name']))}/{html.escape(p)}.html\">"
                           f"{html.escape(_title(p))}</a>" for p in _ordered(pages)) or "<i>not published</i>"
        cpu = fp.get("cpu") or {}
        count = f" x{cpu['count']}" if cpu.get("count") else ""
        # a machine made by kit import (--machine) knows only its name: its cells say so, never "None" or "?"
        unknown = "not recorded (imported)" if fp.get("imported") else "not recorded"
        rows.append(f"<tr><td><b>{html.escape(m['name'])}</b></td><td>{html.escape(when)}</td>"
                    f"<td>{html.escape(str((fp.get('kernel') or {}).get('release') or unknown))}</td>"
                    f"<td>{html.escape(str(cpu.get('model') or unknown) + count)}</td>"
                    f"<td>{html.escape(' '.join(str(dev[k]) for k in ('name', 'kind') if dev.get(k)) or '-')}</td>"
                    f"<td>{m['results']:,}</td><td>{links}</td></tr>")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kit reports</title>{GENERATOR}{NO_FAVICON}
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: 6px 12px; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ background: #f4f4f4; }}
</style></head><body>
<h1>kit reports</h1>
<p>One row per machine, newest results first. Published {html.escape(now)} by kit {html.escape(__version__)}.</p>
{across}
<table><tr><th>machine</th><th>newest result</th><th>kernel</th><th>CPU</th><th>device</th><th>results</th>
<th>reports</th></tr>
{chr(10).join(rows) if rows else '<tr><td colspan="7"><i>no machines in the store yet: run kit report</i></td></tr>'}
</table></body></html>
"""
    path = os.path.join(reports, "index.html")
    fd = folder_fd if folder_fd is not None else os.open(reports, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_ours(fd, "index.html", page.encode(), reports)
    finally:
        if folder_fd is None:
            os.close(fd)
    return path


def _page_notebook(page):
    """(notebook name, its metadata, the parameter's value) a page came from."""
    for name, meta in notebooks().items():
        for wanted in _wanted(meta):
            wanted = wanted or ""
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

