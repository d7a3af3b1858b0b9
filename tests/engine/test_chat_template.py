from __future__ import annotations

import json

import pytest

from airlock.engine.chat_template import ChatTemplate, TemplateRenderError
from airlock.engine.llama_model import LlamaModel
from airlock.engine.types import ChatTurn, ToolCall, ToolSpec

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)

NATIVE = (
    "{% if tools %}TOOLS={{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}[{{ m.role }}]{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<call id={{ c.id }} {{ c.function.name }} "
    "{{ c.function.arguments }}>{% endfor %}"
    "{% if m.tool_call_id %}(for {{ m.tool_call_id }}){% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)


def test_gguf_template_renders_chatml_with_default_system(llama_model: LlamaModel) -> None:
    text = llama_model.template.render([ChatTurn("user", "Hi there")])
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nHi there<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert not llama_model.template.supports_tools


def test_developer_role_becomes_system(llama_model: LlamaModel) -> None:
    text = llama_model.template.render([ChatTurn("developer", "Be terse."), ChatTurn("user", "x")])
    assert text.startswith("<|im_start|>system\nBe terse.<|im_end|>")


def test_tools_are_injected_into_the_existing_system_message(llama_model: LlamaModel) -> None:
    text = llama_model.template.render(
        [ChatTurn("system", "Be terse."), ChatTurn("user", "Weather?")], [WEATHER]
    )
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe terse.\n\n# Tools")
    tools_block = system.split("<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(tools_block)["function"]["name"] == "get_weather"
    assert text.count("<|im_start|>system") == 1


def test_tools_get_a_system_message_when_there_is_none(llama_model: LlamaModel) -> None:
    text = llama_model.template.render([ChatTurn("user", "Weather?")], [WEATHER])
    assert text.startswith("<|im_start|>system\n# Tools")
    assert "SmolLM" not in text.split("<|im_end|>")[0]


def test_tool_calls_and_results_are_rendered_into_the_history(llama_model: LlamaModel) -> None:
    calls = (
        ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_2", "get_weather", "not json"),
    )
    text = llama_model.template.render(
        [
            ChatTurn("user", "Weather in Paris and Rome?"),
            ChatTurn("assistant", None, tool_calls=calls),
            ChatTurn("tool", "18C", tool_call_id="call_1"),
            ChatTurn("tool", "25C", tool_call_id="call_2"),
            ChatTurn("assistant", "Paris 18C, Rome 25C."),
        ]
    )
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n'
        '{"name": "get_weather", "arguments": "not json"}\n</tool_call><|im_end|>'
    ) in text
    # Consecutive tool results share one user turn.
    assert (
        "<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n"
        "<tool_response>\n25C\n</tool_response><|im_end|>"
    ) in text
    assert "<|im_start|>assistant\nParis 18C, Rome 25C.<|im_end|>" in text


def test_native_tool_templates_receive_openai_shapes() -> None:
    template = ChatTemplate(NATIVE)
    assert template.supports_tools
    text = template.render(
        [
            ChatTurn("user", "Weather?"),
            ChatTurn("assistant", None, tool_calls=(ToolCall("call_9", "get_weather", "{}"),)),
            ChatTurn("tool", "sunny", tool_call_id="call_9"),
        ],
        [WEATHER],
    )
    assert text.startswith('TOOLS=[{"type": "function", "function": {"name": "get_weather"')
    assert "[assistant]<call id=call_9 get_weather {}>" in text
    assert "[tool]sunny(for call_9)" in text
    assert text.endswith("[assistant]")


def test_template_errors_become_bad_requests() -> None:
    template = ChatTemplate(
        "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    )
    with pytest.raises(TemplateRenderError) as info:
        template.render([ChatTurn("assistant", "secret words")])
    assert info.value.status_code == 400
    assert "secret" not in info.value.message


def test_templates_run_sandboxed() -> None:
    template = ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateRenderError):
        template.render([ChatTurn("user", "x")])
