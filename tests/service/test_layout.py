"""The shape of the ``gateway`` package (issue 13, "Shape first"): import directions that keep
the flows apart, and the route modules checked at start.

* Nothing below ``gateway/app.py`` imports ``gateway.app``: flows are handed their collaborators
  and handlers take :class:`gateway.services.Services`, so the old circle (``app`` ↔ intake,
  poller, outcomes) cannot come back. Only the entry points that run a gateway (the CLI and the
  demo) may import it.
* The business vocabulary both flows share (``gateway.business``) imports neither flow, and
  nothing below the HTTP layer imports a handler module (``gateway.api.errors`` excepted: its
  error classes are shared).
* A route module listed in ``ROUTE_MODULES`` that does not exist stops the start with one line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway
from gateway import app as app_module
from gateway.app import Gateway, StartupError

ROOT = Path(gateway.__file__).resolve().parent
REPO = ROOT.parent
#: May import gateway.app: the wiring itself and the entry points that run a gateway.
APP_IMPORTERS = ("gateway/app.py", "gateway/cli/", "gateway/demo/")
#: Below the HTTP layer: may not import a handler module.
BELOW_API = ("gateway/inbound/", "gateway/outbound/", "gateway/business/", "gateway/pki/",
             "gateway/db/", "gateway/bus/", "gateway/axis/", "gateway/edxml/",
             "gateway/services.py", "gateway/config.py")


def _module_name(path: Path, repo: Path) -> str:
    parts = path.relative_to(repo).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, repo: Path = REPO) -> set[str]:
    """Every module ``path`` imports anywhere (top level, functions, TYPE_CHECKING blocks),
    relative imports resolved; ``from a import b`` counts as ``a`` and ``a.b``."""
    package = _module_name(path, repo).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _hits(modules: set[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))


def test_the_import_reader_resolves_relative_and_nested_imports(tmp_path):
    """The checks below see what they claim to: a TYPE_CHECKING import, a lazy import in a
    function and a relative ``from .. import app`` all count."""
    pkg = tmp_path / "gateway" / "inbound"
    pkg.mkdir(parents=True)
    typed, lazy, relative = pkg / "typed.py", pkg / "lazy.py", pkg / "relative.py"
    typed.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from gateway.app import Gateway\n")
    lazy.write_text("def f():\n    import gateway.app\n")
    relative.write_text("def f():\n    from .. import app\n")
    for probe in (typed, lazy, relative):
        assert _hits(imports_of(probe, tmp_path), "gateway.app"), probe.name


def test_nothing_below_app_imports_gateway_app():
    """Only ``app.py`` itself, the CLI and the demo (entry points that run a gateway) import
    ``gateway.app``; no flow, handler, helper or adapter does."""
    offenders = {}
    for path in _sources(ROOT, REPO / "adapters"):
        if _rel(path).startswith(APP_IMPORTERS):
            continue
        if hits := _hits(imports_of(path), "gateway.app"):
            offenders[_rel(path)] = hits
    assert offenders == {}


def test_the_shared_business_vocabulary_imports_neither_flow():
    offenders = {}
    for path in _sources(ROOT / "business"):
        hits = [*_hits(imports_of(path), "gateway.inbound"),
                *_hits(imports_of(path), "gateway.outbound")]
        if hits:
            offenders[_rel(path)] = hits
    assert offenders == {}


def test_nothing_below_the_http_layer_imports_a_handler_module():
    offenders = {}
    for path in _sources(ROOT):
        if not _rel(path).startswith(BELOW_API):
            continue
        hits = [m for m in _hits(imports_of(path), "gateway.api")
                if m not in ("gateway.api", "gateway.api.errors")
                and not m.startswith("gateway.api.errors.")]
        if hits:
            offenders[_rel(path)] = hits
    assert offenders == {}


def test_the_old_flat_modules_are_gone():
    """No compatibility shims: each flow module exists once, under its flow's package."""
    flat = ("poller", "intake", "intake_rules", "intake_policy", "intake_store", "verification",
            "routing", "outcomes", "holds", "refused", "axis_outbox", "statuses", "status_rules",
            "revocation", "keyhealth", "signing_services", "replay")
    assert [n for n in flat if (ROOT / f"{n}.py").exists()] == []


def test_every_listed_route_module_exists():
    modules = app_module.route_modules()
    assert [m.__name__ for m in modules] == list(app_module.ROUTE_MODULES)


async def test_a_missing_route_module_stops_the_start_with_one_line(settings, monkeypatch):
    """A route module that is not there is an error at start (before anything connects), not
    a silently missing part of the API."""
    monkeypatch.setattr(app_module, "ROUTE_MODULES",
                        (*app_module.ROUTE_MODULES, "gateway.api.nowhere"))
    gw = Gateway(settings)
    with pytest.raises(StartupError) as caught:
        await gw.start()
    message = str(caught.value)
    assert "gateway.api.nowhere" in message and "\n" not in message
    assert gw.pool is None  # failed before connecting to anything
    with pytest.raises(StartupError, match=r"gateway\.api\.nowhere"):
        gw.web_app()


def test_a_route_module_without_setup_is_refused(monkeypatch):
    monkeypatch.setattr(app_module, "ROUTE_MODULES", ("gateway.api.errors",))
    with pytest.raises(StartupError, match=r"gateway\.api\.errors has no setup\(app\)"):
        app_module.route_modules()


def test_a_route_module_that_fails_to_import_raises_its_own_error(tmp_path, monkeypatch):
    """Only a module that is not there becomes a StartupError: a listed module whose own
    import fails keeps its traceback (a bug, not a configuration)."""
    (tmp_path / "broken_routes.py").write_text("import gateway_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="gateway_no_such_dependency"):
        app_module.route_modules(("broken_routes",))
