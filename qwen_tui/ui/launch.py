"""`qwen-tui` without -p: resolve the model, open the session log, build the toolset, run the app."""

from __future__ import annotations

from qwen_tui.ui.app import QwenApp


def run_app(args) -> int:
    """Entry point for `qwen-tui` without -p."""
    import sys

    from qwen_tui.engine.factory import resolve_engine
    from qwen_tui.engine.local import LocalEngine
    from qwen_tui.headless import sampling_for

    from qwen_tui.session_log import SessionLog

    try:
        spec = resolve_engine(args)  # a local GGUF, or a server (--endpoint/--profile/[endpoint])
        sampling_for(args, True)  # validate --grammar-file etc. before the screen opens
        log, history = SessionLog.open(save=not args.no_save, model=spec.label, resume=args.resume,
                                       settings={"thinking": args.think is not False})
    except Exception as exc:
        print(f"qwen-tui: error: {exc}", file=sys.stderr)
        return 2

    def model_factory(path):
        return LocalEngine(path, n_ctx=args.ctx, n_threads=args.threads, n_threads_batch=args.threads_batch,
                           n_gpu_layers=args.gpu_layers)

    from pathlib import Path

    from qwen_tui.toolset import build_toolset

    toolset = build_toolset(workspace=Path.cwd(), model=spec.label, plugin_paths=args.plugin, allow=args.allow,
                            yolo=args.yolo, interactive=True, enabled=not args.no_tools)
    app = QwenApp(spec.make, model_factory=model_factory, thinking=args.think is not False, system_prompt=args.system, toolset=toolset,
                  max_steps=args.max_steps, max_tokens=args.max_tokens, sampling_for=lambda thinking: sampling_for(args, thinking),
                  session_log=log, history=history, constrain_tool_calls=args.constrain_tools,
                  settings=getattr(args, "settings", None))
    if getattr(args, "fit_warning", None):
        app.config_problems.append(args.fit_warning)  # shown as a warning when the screen opens
    from qwen_tui.ui.image_input import prepare_graphics

    prepare_graphics()  # image previews: ask the terminal about Kitty/Sixel graphics before Textual starts
    app.run()
    return app.return_code or 0
