"""Inference. Only this package talks to llama.cpp, and only its worker process imports llama_cpp.

Public pieces: `LocalEngine` (engine.local), the event dataclasses (engine.events), the errors
(engine.errors) and `Sampling` (engine.params). Importing this package is cheap.
"""
