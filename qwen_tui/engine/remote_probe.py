"""What `RemoteEngine.load()` asks a server besides its model list: can it tokenize, how long is
its context, what is its chat template. Every probe is optional: a server without the endpoint
(or answering it badly) just leaves the engine estimating.
"""

from __future__ import annotations

import httpx

DEFAULT_N_CTX = 32768
TOKENIZE_PATHS = ("/tokenize", "/extras/tokenize")  # llama-server and vLLM; llama-cpp-python's server


def tokenize_path(client: httpx.Client, root: str, model: str | None, timeout: float) -> str | None:
    """The first tokenize endpoint that turns "hello" into tokens, or None."""
    probe = {"content": "hello", "prompt": "hello", "input": "hello", "model": model,
             "add_special": False, "add_special_tokens": False}
    for path in TOKENIZE_PATHS:
        try:
            resp = client.post(root + path, json=probe, timeout=timeout)
            tokens = resp.json().get("tokens") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            tokens = None
        if isinstance(tokens, list) and tokens:
            return path
    return None


def server_props(client: httpx.Client, root: str, timeout: float) -> dict:
    """llama-server's /props ({} from any other server)."""
    try:
        resp = client.get(root + "/props", timeout=timeout)
        props = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    return props if isinstance(props, dict) else {}


def context_and_template(props: dict, entry: dict, n_ctx: int | None) -> tuple[int, str, str | None]:
    """(context length, where it came from, the server's chat template or None). `entry` is the
    model's entry in /models; `n_ctx` the configured length, which wins."""
    template = props.get("chat_template") if isinstance(props.get("chat_template"), str) else None
    n = (props.get("default_generation_settings") or {}).get("n_ctx")
    if n_ctx:
        return n_ctx, "from the config (n_ctx)", template
    for key in ("max_model_len", "context_length", "context_window"):  # vLLM, SGLang, others
        if isinstance(entry.get(key), int) and entry[key] > 0:
            return entry[key], f"the server's {key}", template
    if isinstance(n, int) and n > 0:
        return n, "the server's n_ctx (/props)", template
    return DEFAULT_N_CTX, f"the server does not say; assumed {DEFAULT_N_CTX} (set n_ctx in the config)", template


def sees_images(props: dict, entry: dict) -> bool | None:
    """Whether the served model takes images, where the server says: llama-server's /props
    `modalities.vision`, or `architecture.input_modalities` in /models (llama-server's router,
    OpenRouter). None: it does not say (then images are sent, and a refusal is handled)."""
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and isinstance(modalities.get("vision"), bool):
        return modalities["vision"]
    inputs = (entry.get("architecture") or {}).get("input_modalities") if isinstance(entry.get("architecture"), dict) else None
    if isinstance(inputs, list):
        return "image" in inputs
    return None
