"""Whether a tool call may run: allow, deny, or ask the user.

    policy = ApprovalPolicy(workspace, yolo=False, allow={"write_file"}, interactive=True, host=host)
    decision = policy.decide(call, tool)        # Decision(verdict="allow"|"deny"|"ask", reason)
    policy.remember(tool.name, "once" | "session" | "project")   # after the user said yes

Order of the checks (the first that answers wins):

1. the plugins' ``approve_tool_call(call, tool)`` hook (so a plugin's "deny" beats --yolo);
2. ``yolo`` allows everything;
3. a tool named in ``allow`` (``--allow NAME``) is allowed;
4. the tool's own ``needs_approval(arguments, workspace) -> bool | str``, when it has one:
   ``False`` (or ``None``, ``""``) allows, ``True`` asks *every time* (remembered rules do not
   cover it), and so does a string, which is the reason shown to the user, and an exception in
   it. Use it for e.g. a read-only tool given a path outside the workspace, or `run_command`
   (allowed only when a workspace command rule matches, see ``command_rules()``);
5. a ``read_only`` tool is allowed;
6. a rule remembered "for this session" (memory only) or "always for this project" (in
   ``paths.config_dir()/approvals.json``, keyed by the workspace's resolved real path, so it
   never applies to another folder) allows;
7. otherwise: ``ask`` when interactive; when headless (``interactive=False``) ``deny``, with a
   reason that says how to allow it (``--allow NAME`` or ``--yolo``).

"Allow once" is the UI simply running the call without remembering anything.

Command rules (``allow_command("git status")``, ``command_rules()``, ``forget_command``) are
exact command prefixes stored per workspace next to the tool rules, for `run_command`'s check
(`qwen_tui.tools.command_rules` says which commands can match one).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from qwen_tui import paths

__all__ = ["ApprovalPolicy", "Decision", "approvals_path"]

Verdict = Literal["allow", "deny", "ask"]
Scope = Literal["once", "session", "project"]


def approvals_path() -> Path:
    return paths.config_dir() / "approvals.json"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


class ApprovalPolicy:
    def __init__(
        self,
        workspace: str | Path,
        yolo: bool = False,
        allow: Iterable[str] = (),
        interactive: bool = True,
        *,
        host: Any = None,
        store_path: Path | None = None,
    ) -> None:
        self.workspace = Path(workspace).resolve()
        self.yolo = yolo
        self.allow = set(allow)
        self.interactive = interactive
        self.host = host
        self.store_path = store_path
        self.session: set[str] = set()
        self._lock = threading.Lock()

    # -- the decision ----------------------------------------------------------------------

    def decide(self, call: Any, tool: Any) -> Decision:
        name = getattr(tool, "name", None) or getattr(call, "name", "?")
        arguments = getattr(call, "arguments", {}) or {}
        if self.host is not None:
            answer = self.host.approve_tool_call(call, tool)
            if answer == "allow":
                return Decision("allow", "allowed by a plugin")
            if answer == "deny":
                return Decision("deny", f"a plugin refused the call to {name}")
        if self.yolo:
            return Decision("allow", "--yolo")
        if name in self.allow:
            return Decision("allow", f"--allow {name}")
        check = getattr(tool, "needs_approval", None)
        if callable(check):
            try:
                answer = check(arguments, self.workspace)
                needed = bool(answer)
                why = answer if isinstance(answer, str) and answer else f"{name} asks for approval for these arguments"
            except Exception as exc:  # noqa: BLE001 - a broken check asks, never silently allows
                needed, why = True, f"{name}'s approval check failed ({type(exc).__name__}: {exc})"
            if not needed:
                return Decision("allow", f"{name} needs no approval for these arguments")
            return self._ask_or_deny(name, why)
        if getattr(tool, "read_only", False):
            return Decision("allow", f"{name} is read-only")
        if name in self.session:
            return Decision("allow", f"{name} allowed for this session")
        if name in self.project_rules():
            return Decision("allow", f"{name} always allowed in {self.workspace}")
        return self._ask_or_deny(name, f"{name} can change things")

    def _ask_or_deny(self, name: str, why: str) -> Decision:
        if self.interactive:
            return Decision("ask", why)
        return Decision("deny", f"{why} and needs approval: run with --allow {name} (or --yolo) to allow it")

    # -- remembering the user's answers ----------------------------------------------------

    def _path(self) -> Path:
        return self.store_path or approvals_path()

    def _read_store(self) -> dict:
        try:
            data = json.loads(self._path().read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def project_rules(self) -> set[str]:
        """Tools always allowed in this workspace (re-read each time: other sessions may add)."""
        entry = self._read_store().get(str(self.workspace), {})
        allowed = entry.get("allow", []) if isinstance(entry, dict) else []
        return {n for n in allowed if isinstance(n, str)}

    def command_rules(self) -> list[str]:
        """The command prefixes `run_command` may run without asking in this workspace."""
        entry = self._read_store().get(str(self.workspace), {})
        rules = entry.get("commands", []) if isinstance(entry, dict) else []
        return [r for r in rules if isinstance(r, str)]

    def allow_command(self, prefix: str) -> str:
        """Allow commands starting with these exact words in this workspace (saved); returns the
        rule as stored. ValueError for a prefix that could never be safe (``;``, ``bash``, ...)."""
        from qwen_tui.tools.command_rules import normalise_rule

        rule = normalise_rule(prefix)
        self._update(lambda rules: rules | {rule}, key="commands")
        return rule

    def forget_command(self, prefix: str) -> bool:
        """Remove a command rule (given as stored or with other spacing); True if there was one."""
        from qwen_tui.tools.command_rules import normalise_rule

        try:
            rule = normalise_rule(prefix)
        except ValueError:
            rule = prefix
        had = rule in self.command_rules() or prefix in self.command_rules()
        self._update(lambda rules: rules - {rule, prefix}, key="commands")
        return had

    def remember(self, tool_name: str, scope: Scope) -> None:
        """Record the user's "yes": once (nothing kept), session (memory), project (on disk)."""
        if scope == "once":
            return
        if scope == "session":
            self.session.add(tool_name)
            return
        if scope != "project":
            raise ValueError(f"scope must be 'once', 'session' or 'project', not {scope!r}")
        self._update(lambda names: names | {tool_name})

    def forget(self, tool_name: str) -> None:
        """Drop the session and project rules for `tool_name` (this workspace only)."""
        self.session.discard(tool_name)
        self._update(lambda names: names - {tool_name})

    def _update(self, change, key: str = "allow") -> None:
        with self._lock:
            data = self._read_store()
            workspace = str(self.workspace)
            entry = data.get(workspace) if isinstance(data.get(workspace), dict) else {}
            names = {n for n in entry.get(key, []) if isinstance(n, str)}
            entry[key] = sorted(change(names))
            data[workspace] = entry
            path = self._path()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".approvals.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
            os.replace(tmp, path)
