"""Loading an app: import every module of the functions folder, collect what it defines.

``convex/items.py`` defining ``create`` becomes ``items:create``;
``convex/webhooks/stripe.py`` defining ``handle`` becomes
``webhooks/stripe:handle``. ``schema.py`` may define ``schema``, ``http.py``
``http`` and ``auth_config.py`` ``providers``.

Each load imports the folder as a fresh package with a unique name, so a
reload never sees stale modules and two apps in one process never collide.
Modules import each other relatively (``from .model import helper``).
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import itertools
import os
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..crons import CronJobs
from ..errors import AppLoadError
from ..schema import SchemaDefinition
from .define import FunctionDefinition
from .refs import function_path

_generation = itertools.count(1)


@dataclass
class App:
    """What a functions folder defines."""

    root: Path
    functions: dict[str, FunctionDefinition] = field(default_factory=dict)
    schema: SchemaDefinition | None = None
    http: Any = None
    auth_providers: list[Any] = field(default_factory=list)
    #: ``convex/crons.py``'s jobs by name (``crons = cron_jobs()``), targets resolved.
    crons: dict[str, Any] = field(default_factory=dict)
    package: str = ""

    def unload(self) -> None:
        """Forget this load's modules (the next load imports afresh)."""
        for name in [
            m for m in sys.modules if m == self.package or m.startswith(self.package + ".")
        ]:
            del sys.modules[name]


def _skip(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def _module_files(root: Path) -> list[Path]:
    out: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _skip(d))
        out.extend(Path(directory) / f for f in sorted(files) if f.endswith(".py") and not _skip(f))
    return out


def _error_location(exc: BaseException, root: Path) -> tuple[str | None, int | None]:
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    inside = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).resolve().is_relative_to(root)
    ]
    if inside:
        return inside[-1].filename, inside[-1].lineno
    return None, None


def _package(name: str, directory: Path) -> types.ModuleType:
    init = directory / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(directory)]
        )
    else:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
    if spec is None:  # pragma: no cover - only for unreadable folders
        raise AppLoadError(f"cannot import the folder {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if init.exists() and spec.loader is not None:
        spec.loader.exec_module(module)
    return module


def load_app(functions_dir: str | os.PathLike[str]) -> App:
    """Import a functions folder and collect its functions, schema, router and auth config.

    Raises :class:`AppLoadError` naming the file and line of the first problem.
    """
    root = Path(functions_dir).resolve()
    if not root.is_dir():
        raise AppLoadError(f"the functions folder {root} does not exist")
    app = App(root=root, package=f"_pyconvex_app_{next(_generation)}")
    try:
        _import_all(app)
        _resolve_crons(app)
    except AppLoadError:
        app.unload()
        raise
    except BaseException as exc:
        app.unload()
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        file, line = _error_location(exc, root)
        if isinstance(exc, SyntaxError):
            code = (exc.text or "").strip()
            message = f"SyntaxError: {exc.msg}" + (f"\n    {code}" if code else "")
        else:
            message = "".join(traceback.format_exception_only(exc)).strip()
        raise AppLoadError(message, file=file, line=line) from exc
    return app


def _resolve_crons(app: App) -> None:
    """Each cron job's target, now that every module is loaded: a mutation or an action."""
    for name, job in app.crons.items():
        file, _, line = job.defined_at.rpartition(":")
        try:
            path = function_path(job.target)
        except (TypeError, ValueError) as exc:
            raise AppLoadError(f"Cron job {name!r}: {exc}", file=file, line=int(line)) from None
        fn = app.functions.get(path)
        if fn is None or fn.kind == "query":
            problem = "is a query" if fn is not None else "is not a function of this app"
            raise AppLoadError(
                f"Cron job {name!r}: {path} {problem}: a cron job runs a mutation or an action",
                file=file,
                line=int(line),
            )
        app.crons[name] = dataclasses.replace(job, function=path)


def _import_all(app: App) -> None:
    root = app.root
    _package(app.package, root)
    for path in _module_files(root):
        relative = path.relative_to(root).with_suffix("")
        parts = relative.parts
        for depth in range(1, len(parts)):
            name = ".".join((app.package, *parts[:depth]))
            if name not in sys.modules:
                _package(name, root.joinpath(*parts[:depth]))
        if parts[-1] == "__init__":
            continue
        name = ".".join((app.package, *parts))
        module = sys.modules.get(name) or importlib.import_module(name)
        _collect(app, module, "/".join(parts), path)


def _collect(app: App, module: types.ModuleType, module_path: str, file: Path) -> None:
    for attr, obj in vars(module).items():
        if isinstance(obj, FunctionDefinition) and obj.__module__ == module.__name__:
            path = f"{module_path}:{attr}"
            if obj.path is None or obj.path == path:
                obj.path = path
                app.functions[path] = obj
    if module_path == "schema":
        schema = getattr(module, "schema", None)
        if schema is not None and not isinstance(schema, SchemaDefinition):
            raise AppLoadError("`schema` must be made with define_schema(...)", file=str(file))
        app.schema = schema
    elif module_path == "http":
        app.http = getattr(module, "http", None)
    elif module_path == "crons":
        crons = getattr(module, "crons", None)
        if crons is not None and not isinstance(crons, CronJobs):
            raise AppLoadError("`crons` must be made with cron_jobs()", file=str(file))
        app.crons = dict(crons.jobs) if crons is not None else {}
    elif module_path == "auth_config":
        providers = getattr(module, "providers", [])
        if not isinstance(providers, list):
            raise AppLoadError("`providers` must be a list", file=str(file))
        app.auth_providers = providers
