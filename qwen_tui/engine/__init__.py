"""Inference. Only this package talks to llama.cpp, and only its worker process imports llama_cpp.

Public pieces: `LocalEngine` (engine.local), `RemoteEngine` (engine.remote: an OpenAI-compatible
server), the `Engine` Protocol both satisfy (engine.base), `resolve_engine` (engine.factory), the
event dataclasses (engine.events), the errors (engine.errors) and `Sampling` (engine.params).
Importing this package is cheap.
"""
