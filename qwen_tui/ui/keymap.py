"""Keymap checks: the config's `[keymap]` (binding id -> keys) against every binding we have.

    problems = keymap_problems(keymap)     # unknown ids, and keys two bindings now share

Scopes are where bindings are live together: the app (with its main screen), the prompt (the
prompt's own keys plus the app's), and each dialog (its keys plus the app's). A clash counts
only where the user's keymap made it, so Textual's own overlaps (the prompt's `up` vs
nothing) are never reported.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from qwen_tui.ui.screens.approval import ApprovalDialog
from qwen_tui.ui.screens.dialogs import ErrorDialog, HelpScreen
from qwen_tui.ui.screens.sessions import SessionsScreen
from qwen_tui.ui.widgets.prompt import PromptInput

WIDGET_SCOPES = {"the prompt": PromptInput, "the sessions list": SessionsScreen, "the approval dialog": ApprovalDialog,
                 "the error dialog": ErrorDialog, "the help screen": HelpScreen}


def _bindings(cls) -> list[Binding]:
    return [b for bindings in cls._merge_bindings().key_to_bindings.values() for b in bindings]  # noqa: SLF001


def _keys(binding: Binding, keymap: dict[str, str]) -> list[str]:
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    return [k.strip() for k in keys.split(",") if k.strip()]


def _name(binding: Binding) -> str:
    return binding.id or f"{binding.action} (built in)"


def keymap_problems(keymap: dict[str, str], app_cls: type[App] | None = None) -> list[str]:
    """One line per unknown binding id and per key that two bindings would share."""
    if app_cls is None:
        from qwen_tui.ui.app import QwenApp

        app_cls = QwenApp
    keymap = App._normalize_keymap(keymap)  # noqa: SLF001 - "?" and "question_mark" are one key
    app_bindings = _bindings(app_cls) + _bindings(Screen)
    scopes = {name: _bindings(cls) for name, cls in WIDGET_SCOPES.items()}
    known = {b.id for b in app_bindings + [b for bs in scopes.values() for b in bs] if b.id}
    problems = [f"[keymap] {binding_id}: no binding has this id; ignored (F1 lists the ids)"
                for binding_id in keymap if binding_id not in known]
    reported: set[tuple[str, frozenset]] = set()

    def clash(scope: str, own: list[Binding], outer: list[Binding] = ()) -> None:
        by_key: dict[str, list[Binding]] = {}
        for binding in [*own, *outer]:
            for key in _keys(binding, keymap):
                if binding not in by_key.setdefault(key, []):
                    by_key[key].append(binding)
        for key, users in sorted(by_key.items()):
            names = frozenset(_name(b) for b in users)
            if len(names) < 2 or not any(b.id in keymap for b in users) or (key, names) in reported:
                continue
            reported.add((key, names))
            mine = [b for b in users if b in own]
            if len(mine) < len(users):  # a widget's key vs the app's: priority first, else the widget
                winner = next((b for b in users if b.priority), mine[0])
            else:  # one map: Textual drops the default binding a remap lands on
                remapped = [b for b in users if b.id in keymap]
                winner = remapped[0] if len(remapped) == 1 else None
            outcome = f"only {_name(winner)} will get it" if winner else "only one of them will get it"
            problems.append(f"[keymap] {key} is used by both {' and '.join(sorted(names))} in {scope}: {outcome}")

    clash("the app", app_bindings)
    for scope, bindings in scopes.items():
        clash(scope, bindings)
        clash(scope, bindings, [b for b in app_bindings if b.priority or scope == "the prompt"])
    return problems
