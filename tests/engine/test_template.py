"""The model's own chat template, rendered the way the template's authors expect."""

from __future__ import annotations

import pytest

from qwen_tui.engine.template import TemplateError, prompt_opens_reasoning, render_chat

TOOLS = [{
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file <with> 'quotes' & ünïcode",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}]


def test_qwen35_thinking_on_and_off(qwen35_template):
    messages = [{"role": "user", "content": "hi"}]
    on = render_chat(qwen35_template, messages, thinking=True)
    off = render_chat(qwen35_template, messages, thinking=False)
    assert on.endswith("<|im_start|>assistant\n<think>\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert prompt_opens_reasoning(on) and not prompt_opens_reasoning(off)


def test_qwen35_tools_rendered_as_json_without_html_escaping(qwen35_template):
    prompt = render_chat(qwen35_template, [{"role": "user", "content": "read a.txt"}], tools=TOOLS)
    assert "# Tools" in prompt and "<tools>" in prompt
    assert '"description": "Read a file <with> \'quotes\' & ünïcode"' in prompt
    assert "<function=example_function_name>" in prompt


def test_qwen35_drops_old_reasoning(qwen35_template):
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>\nold thoughts\n</think>\n\nA"},
        {"role": "user", "content": "b"},
    ]
    prompt = render_chat(qwen35_template, messages)
    assert "old thoughts" not in prompt
    assert "<|im_start|>assistant\nA<|im_end|>" in prompt


def test_template_errors_are_clear(qwen35_template):
    with pytest.raises(TemplateError, match="No user query found"):
        render_chat(qwen35_template, [{"role": "system", "content": "only a system message"}])
    with pytest.raises(TemplateError, match="does not parse"):
        render_chat("{% for x in %}", [{"role": "user", "content": "x"}])


def test_chatml_fallback_when_the_model_has_no_template():
    prompt = render_chat(None, [{"role": "user", "content": "hi"}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
