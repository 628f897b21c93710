"""Every config key qwen-tui knows: its section, type, default and meaning, declared once.

The config file's validation, the `QWEN_TUI_*` environment variables, `qwen-tui config show`,
the commented default file `config edit` creates and docs/config.md are all derived from this.
A feature still reads its own table with `qwen_tui.config.load_table("section")`; declaring
its keys here is what keeps them documented and out of the "unknown key" warnings.

Types: "str", "int", "float", "bool", "list[str]", "table[str]" (string -> string).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: object
    doc: str
    flag: str | None = None  # the CLI flag that overrides it (flags beat env beat file)
    dest: str | None = None  # that flag's argparse dest
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    env: bool = True  # settable as QWEN_TUI_<SECTION>_<KEY>
    invert: bool = False  # the flag turns the key off (--no-tools -> enabled = false)
    example: object = None  # shown (commented out) in the default file when there is no default


@dataclass(frozen=True)
class Section:
    name: str  # dotted: "tools.shell"
    doc: str
    keys: tuple[Key, ...] = ()
    # [keymap]: any key name, each value of this type. [mcp.servers.NAME]: named sub-tables with `keys`.
    any_key: Key | None = None
    named: bool = False
    example: str = ""

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


_ANY = None  # default "not set": the feature picks (machine-dependent or model-dependent)

SECTIONS: tuple[Section, ...] = (
    Section("ui", "The full-screen app.", (
        Key("theme", "str", "textual-dark", "Theme name: a shipped one (qwen, midnight, paper, high-contrast), a "
            "Textual built-in (textual-dark, nord, ...) or one from `<config dir>/themes/*.toml`. Switch live "
            "from the command palette (ctrl+p, then \"Theme\").", flag="--theme", dest="theme"),
        Key("watch_themes", "bool", True, "Re-apply a theme within a second when its file changes (watchfiles)."),
    )),
    Section("model", "Generation settings for the local model (also used with -p).", (
        Key("ctx", "int", _ANY, "Context length in tokens (default: the model's, capped by RAM).", flag="--ctx",
            dest="ctx", min=256, example=32768),
        Key("threads", "int", _ANY, "Decode threads (default: chosen for this machine).", flag="--threads",
            dest="threads", min=1, example=8),
        Key("threads_batch", "int", _ANY, "Prompt-processing threads.", flag="--threads-batch", dest="threads_batch",
            min=1, example=8),
        Key("gpu_layers", "int", _ANY, "Layers to offload to the GPU (default: all, if llama.cpp has a GPU "
            "backend; 0 = CPU only).", flag="--gpu-layers", dest="gpu_layers", min=-1, example=99),
        Key("max_tokens", "int", 4096, "Longest answer, in tokens.", flag="--max-tokens", dest="max_tokens", min=1),
        Key("temperature", "float", _ANY, "Sampling temperature (0 = greedy; default: Qwen 3.5's recommended "
            "value for thinking / non-thinking mode).", flag="--temperature", dest="temperature", min=0, max=5, example=0.7),
        Key("seed", "int", _ANY, "Sampling seed, for reproducible answers.", flag="--seed", dest="seed", example=42),
        Key("think", "bool", _ANY, "Let Qwen 3.5 reason before answering (default: on; the status line shows "
            "it, ctrl+t toggles it).", flag="--think / --no-think",
            dest="think", example=True),
        Key("system", "str", _ANY, "System prompt.", flag="--system", dest="system", example="You are a concise assistant."),
    )),
    Section("speed", "Draft-and-verify decoding and thread tuning (the output is the same, only faster).", (
        Key("speculative", "str", "auto", "\"auto\": MTP when the GGUF has NextN tensors; \"mtp\"; \"lookup\" (drafts "
            "copied from earlier in the context); \"off\".", choices=("auto", "mtp", "lookup", "off")),
        Key("draft_max", "int", 3, "Tokens drafted per step.", min=1, max=8),
        Key("mtp_p_min", "float", 0.5, "MTP stops drafting below this confidence.", min=0, max=1),
        Key("lookup_ngram_min", "int", 2, "Prompt lookup: the shortest suffix that must match earlier context.",
            min=1, max=16),
        Key("lookup_ngram_max", "int", 4, "Prompt lookup: the longest.", min=1, max=16),
        Key("draft_adaptive", "bool", True, "Pause drafting while drafted steps measure slower than plain ones."),
        Key("tune_threads", "bool", True, "Measure thread counts at first load; use fewer when the CPU is busy."),
        Key("flash_attn", "str", "auto", "Flash attention: \"auto\" (llama.cpp's choice with a GPU; off on CPU, "
            "where it measured slower with long contexts: benchmarks/flash_attn.py), \"on\", \"off\".",
            choices=("auto", "on", "off")),
    )),
    Section("vision", "Image input (a vision projector, mmproj-*.gguf).", (
        Key("enabled", "bool", True, "Use a projector when one is found for the model."),
        Key("mmproj", "str", _ANY, "This projector file, for every model (default: the one registered with the "
            "model, or an mmproj-*.gguf next to it).", example="~/models/mmproj-Qwen3.5-4B-F16.gguf"),
        Key("image_max_tokens", "int", _ANY, "Token cap per image (default: 1024 on CPU, 2048 with a GPU).", min=16,
            example=1024),
    )),
    Section("models", "Where downloaded models live (`qwen-tui models`).", (
        Key("dir", "str", _ANY, "Folder for pulled GGUF models (`~` and $VARS expanded; default: "
            "`<user data dir>/models`).", example="~/models"),
        Key("default", "str", _ANY, "Model used when neither --model nor --demo is given: a registry name or a "
            "GGUF path.", example="qwen3.5:4b"),
    )),
    Section("endpoint", "The default OpenAI-compatible server (used when no --model/--demo is given).", (
        Key("url", "str", _ANY, "Base URL, e.g. \"http://gpu-box:8000/v1\".", flag="--endpoint", example="http://127.0.0.1:8080/v1"),
        Key("api_key_env", "str", _ANY, flag="--api-key-env", doc="The NAME of an environment variable holding the API key (the key itself "
            "is never stored).", example="OPENAI_API_KEY"),
        Key("model", "str", _ANY, "Model name on the server (default: the first it lists).", flag="--remote-model", example="Qwen/Qwen3.5-27B"),
        Key("timeout", "float", 600.0, "Seconds to wait for the next chunk of a streamed answer.", min=0),
        Key("connect_timeout", "float", 10.0, "Seconds to wait for a connection.", min=0),
        Key("n_ctx", "int", _ANY, "Context length, when the server does not say.", min=1, example=131072),
        Key("tool_calls", "str", "auto", "How past tool calls are sent back.", choices=("auto", "native", "text")),
    )),
    Section("profiles", "Named servers for `--profile NAME`; the same keys as [endpoint], overriding it.",
            named=True, example='[profiles.local-llama]\nurl = "http://127.0.0.1:8080"'),
    Section("context", "How the conversation is fitted into the context window.", (
        Key("reply_reserve", "int", 4096, "Tokens kept free for the answer (capped by max_tokens and n_ctx / 4).",
            min=0),
        Key("compact_at", "float", 0.85, "Compact when the prompt passes this fraction of the budget.", min=0, max=1),
        Key("compact_to", "float", 0.5, "... down to about this fraction (below compact_at).", min=0, max=1),
        Key("keep_recent_turns", "int", 2, "The last N user turns (with their answers and tool calls) stay verbatim.",
            min=0),
        Key("tool_output_keep_chars", "int", 1200, "An elided tool output keeps this many characters (head + tail).",
            min=0),
        Key("max_message_fraction", "float", 0.5, "One message may take at most this fraction of the budget.",
            min=0, max=1),
        Key("summary_max_tokens", "int", 512, "The length of a compaction summary.", min=0),
        Key("max_checkpoints", "int", 32, "Recurrent-state (DeltaNet) checkpoints kept at message boundaries, so edits and template rewrites restore instead of re-reading the session (0 = none).", min=0),
        Key("checkpoint_mib", "int", 1024, "Most memory, in MiB, all checkpoints together may take.", min=0),
    )),
    Section("tools", "The agent's tool loop.", (
        Key("max_steps", "int", 8, "Most model turns per prompt (tool rounds).", flag="--max-steps", dest="max_steps",
            min=1),
        Key("enabled", "bool", True, "Offer tools to the model (--no-tools turns them off).", flag="--no-tools",
            dest="no_tools", invert=True),
        Key("constrain", "bool", False, "Grammar-constrain tool calls once <tool_call> starts.",
            flag="--constrain-tools", dest="constrain_tools"),
    )),
    Section("tools.files", "The files plugin (read, list, search, edit).", (
        Key("extra_roots", "list[str]", [], "More folders the file tools may use without asking (besides the "
            "workspace); `~` expanded, relative ones from the workspace."),
        Key("max_read_chars", "int", 16000, "Most characters one read returns.", min=1),
        Key("max_results", "int", 200, "Most matches one search or listing returns.", min=1),
        Key("max_search_file_bytes", "int", 5_000_000, "Files larger than this are skipped by search.", min=1),
    )),
    Section("tools.shell", "The shell plugin.", (
        Key("default_timeout", "float", 60, "Seconds a command may run when the model does not say.", min=0),
        Key("max_timeout", "float", 600, "The longest timeout the model may ask for, in seconds.", min=0),
        Key("max_output_bytes", "int", 16000, "Output kept per command (head and tail).", min=1),
        Key("scrub_env", "list[str]", [], "More environment variable names or patterns (\"CORP_*\") removed "
            "before a command runs."),
        Key("keep_env", "list[str]", [], "Variables kept even if they look like secrets."),
        Key("shell", "str", "", "The shell program (default: bash, else sh)."),
    )),
    Section("tools.screen", "The screenshot plugin.", (
        Key("dir", "str", _ANY, "Where screenshots are saved (default: `<user data dir>/screenshots`).", example="~/Pictures/qwen-tui"),
        Key("tmux_fallback", "bool", True, "Without a display, capture the tmux pane's text instead."),
    )),
    Section("plugins", "Tool plugins (`qwen-tui plugins`).", (
        Key("disabled", "list[str]", [], "Plugin names not to load."),
    )),
    Section("mcp.servers", "MCP servers (stdio) whose tools the model may call; one sub-table per server.",
            named=True, example='[mcp.servers.time]\ncommand = "python"\nargs = ["-m", "mcp_server_time"]'),
    Section("keymap", "Remap any key by its binding id (see F1 for the ids), e.g. `\"chat.toggle_thinking\" = "
            "\"ctrl+g\"`. Several keys: `\"ctrl+g,f5\"`. Conflicts are reported at startup.",
            any_key=Key("<binding id>", "str", _ANY, "Key(s), comma-separated.", env=False)),
)

BY_NAME: dict[str, Section] = {s.name: s for s in SECTIONS}
NAMED_KEYS: dict[str, tuple[Key, ...]] = {
    "profiles": BY_NAME["endpoint"].keys,
    "mcp.servers": (
        Key("command", "str", _ANY, "The program to start (required)."),
        Key("args", "list[str]", [], "Its arguments."),
        Key("env", "table[str]", {}, "Extra environment variables for it (it gets only a safe minimal environment "
            "otherwise)."),
        Key("cwd", "str", _ANY, "Its working folder."),
        Key("enabled", "bool", True, "false: keep the entry but don't start it."),
        Key("timeout", "float", 60.0, "Seconds one tool call may take.", min=0),
        Key("startup_timeout", "float", 30.0, "Seconds to wait for the server's tool list.", min=0),
    ),
}

def env_name(section: str, key: str) -> str:
    return "QWEN_TUI_" + f"{section}_{key}".replace(".", "_").replace("-", "_").upper()


def env_keys() -> dict[str, tuple[Section, Key]]:
    """QWEN_TUI_UI_THEME -> (ui, theme), for every key of every fixed section."""
    return {env_name(s.name, k.name): (s, k) for s in SECTIONS for k in s.keys if k.env}

