"""Only ``fhir_bridge.outreach.lifecycle`` writes ``PlannedMessage.status``.

The code base is read as Python syntax trees, so the rule stays true as it grows:

* no ``update(PlannedMessage)`` / ``insert(PlannedMessage)`` setting ``status`` (or values
  it cannot read), no ``PlannedMessage.__table__`` and no raw ``UPDATE planned_message``
  outside the lifecycle module;
* no ``PlannedMessage(status=...)`` outside it (new rows come from ``new_planned`` /
  ``new_withheld``);
* no assignment to any ``<x>.status`` (or ``setattr(x, "status", …)``) outside the modules
  that own *other* tables with a status column, and there not in a function that names
  ``PlannedMessage``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fhir_bridge", "smart_app", "channels", "rules")
OWNER = "fhir_bridge/outreach/lifecycle.py"
MODEL = "PlannedMessage"

# Modules whose ``.status`` assignments are about other tables or objects: inbox
# notifications, inbound SMS, reply SMS, Communication syncs, Subscriptions, HTTP errors,
# the sandbox EHR and doctor checks. Adding a module here needs a reason.
OTHER_STATUS_OWNERS = (
    "fhir_bridge/fhir/",
    "fhir_bridge/ingest/",
    "fhir_bridge/inbound/processing.py",
    "fhir_bridge/inbound/replies.py",
    "fhir_bridge/inbound/repository.py",
    "fhir_bridge/sandbox/",
    "fhir_bridge/sync/",
    "fhir_bridge/doctor",
)
RAW_SQL = re.compile(r"\b(update|insert\s+into)\s+planned_message\b", re.IGNORECASE)


def violations(source: str, module: str) -> list[str]:
    """Every way ``module`` writes a planned message's status, as ``module:line: what``."""
    if module == OWNER:
        return []
    found: list[str] = []
    tree = ast.parse(source)

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{module}:{getattr(node, 'lineno', 0)}: {what}")

    imports_model = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "fhir_bridge.store.models"
        and any(alias.name == MODEL for alias in node.names)
        for node in ast.walk(tree)
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _called_name(node)
            if name == "values" and _writes_status(node) and _on_model_statement(node):
                report(node, f"update/insert of {MODEL}.status outside the lifecycle")
            if name == MODEL and imports_model and any(k.arg == "status" for k in node.keywords):
                report(node, f"{MODEL}(status=...) outside the lifecycle")
            if name == "setattr" and len(node.args) >= 2 and _is_text(node.args[1], "status"):
                report(node, "setattr(..., 'status', ...)")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "__table__"
            and _names_model(node.value)
        ):
            report(node, f"{MODEL}.__table__ outside the lifecycle")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and RAW_SQL.search(node.value)
        ):
            report(node, "raw SQL writing planned_message")
    allowed_module = module.startswith(OTHER_STATUS_OWNERS)
    seen: set[int] = set()
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        names_model = any(isinstance(n, ast.Name) and n.id == MODEL for n in ast.walk(function))
        for target in _status_targets(function):
            if id(target) in seen:
                continue  # a nested function, already read with its parent
            seen.add(id(target))
            if not allowed_module:
                report(target, f"assigns {ast.unparse(target)}")
            elif names_model:
                report(target, f"assigns {ast.unparse(target)} next to {MODEL}")
    return found


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _writes_status(values: ast.Call) -> bool:
    """``.values(status=…)``, or values we cannot read (``**x``, a positional dict)."""
    for keyword in values.keywords:
        if keyword.arg == "status":
            return True
        if keyword.arg is None and not _dict_without_status(keyword.value):
            return True
    return any(not _dict_without_status(arg) for arg in values.args)


def _dict_without_status(node: ast.AST) -> bool:
    return isinstance(node, ast.Dict) and all(
        key is not None and not _is_text(key, "status") for key in node.keys
    )


def _on_model_statement(call: ast.Call) -> bool:
    """The ``.values`` call hangs off ``update(PlannedMessage)`` / ``insert(PlannedMessage)``."""
    node: ast.AST = call.func
    while isinstance(node, (ast.Attribute, ast.Call)):
        if isinstance(node, ast.Call):
            if _called_name(node) in ("update", "insert") and any(
                _names_model(arg) for arg in node.args
            ):
                return True
            node = node.func
        else:
            node = node.value
    return False


def _names_model(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == MODEL


def _is_text(node: ast.AST, text: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == text


def _status_targets(function: ast.AST) -> list[ast.Attribute]:
    """``x.status`` assigned in ``function`` (plain, tuple, augmented, annotated)."""
    targets: list[ast.Attribute] = []
    for node in ast.walk(function):
        raw: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            raw = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            raw = [node.target]
        while raw:
            item = raw.pop()
            if isinstance(item, (ast.Tuple, ast.List, ast.Starred)):
                raw.extend(item.elts if not isinstance(item, ast.Starred) else [item.value])
            elif isinstance(item, ast.Attribute) and item.attr == "status":
                targets.append(item)
    return targets


def _modules() -> list[tuple[str, str]]:
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules.append((path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")))
    return modules


def test_no_module_but_the_lifecycle_writes_a_message_status() -> None:
    found = [v for module, source in _modules() for v in violations(source, module)]

    assert found == [], "status changes go through MessageLifecycle:\n" + "\n".join(found)


def test_the_lifecycle_module_exists_where_the_rule_points() -> None:
    assert (ROOT / OWNER).is_file()


@pytest.mark.parametrize(
    "offender",
    [
        "def f(row):\n    row.status = 'sent'\n",
        "def f(row):\n    row.status, row.lease_until = 'queued', None\n",
        "def f(s):\n    s.execute(update(PlannedMessage).values(status='sent'))\n",
        "def f(s, v):\n    s.execute(update(PlannedMessage).where(x).values(**v))\n",
        "def f(s):\n    s.execute(insert(PlannedMessage).values({'status': 'sent'}))\n",
        "from fhir_bridge.store.models import PlannedMessage\n"
        "def f():\n    return PlannedMessage(id='1', status='sent')\n",
        "def f(row):\n    setattr(row, 'status', 'sent')\n",
        "def f(s):\n    s.execute(text('UPDATE planned_message SET status = 1'))\n",
        "def f(s):\n    s.execute(PlannedMessage.__table__.update())\n",
    ],
)
def test_the_check_catches_every_way_of_writing_the_status(offender: str) -> None:
    assert violations(offender, "fhir_bridge/outreach/delivery.py")


def test_another_tables_status_in_its_own_module_is_allowed_but_not_beside_messages() -> None:
    inbound = "def f(row):\n    row.status = 'done'\n"
    mixed = "def f(s):\n    row = s.get(PlannedMessage, '1')\n    row.status = 'sent'\n"

    other_column = (
        "def f(s):\n    s.execute(update(PlannedMessage).values(communication_status='written'))\n"
    )

    assert violations(inbound, "fhir_bridge/inbound/processing.py") == []
    assert violations(other_column, "fhir_bridge/outreach/repository.py") == []
    assert violations(mixed, "fhir_bridge/inbound/processing.py")
