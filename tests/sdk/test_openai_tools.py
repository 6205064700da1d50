"""Tool calling through the official `openai` SDK against the real binaries (gateway + fake-zai).

Both strategies run: the default (`prompt`, the gateway's text protocol) and `native` (upstream
glm_blocks), each on its own stack. The SDK's stream helper must accumulate the calls without
error, and a three-turn agent loop (call → result → call → result → answer) must terminate.
"""

import json
import os

import openai
import pytest

from conftest import Stack

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}


@pytest.fixture(scope="module", params=["prompt", "native"])
def tool_stack(request):
    """A stack whose gateway runs with TOOL_STRATEGY set to the parameter."""
    previous = os.environ.get("TOOL_STRATEGY")
    os.environ["TOOL_STRATEGY"] = request.param
    try:
        with Stack() as s:
            s.strategy = request.param
            yield s
    finally:
        if previous is None:
            os.environ.pop("TOOL_STRATEGY", None)
        else:
            os.environ["TOOL_STRATEGY"] = previous


def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0)


def stream_helper(c: openai.OpenAI):
    # The helper moved out of `beta` in openai 1.x; support both spellings.
    completions = c.chat.completions
    if hasattr(completions, "stream"):
        return completions.stream
    return c.beta.chat.completions.stream


def test_stream_helper_accumulates_parallel_calls(tool_stack):
    c = client(tool_stack)
    done_events = []
    with stream_helper(c)(
        model="GLM-4.6",
        messages=[{"role": "user", "content": "weather and time [[fake:tool_parallel]]"}],
        tools=[WEATHER, CLOCK],
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done_events.append((event.name, json.loads(event.arguments)))
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [call.function.name for call in calls] == ["get_weather", "get_time"]
    assert [json.loads(call.function.arguments) for call in calls] == [{"city": "test"}, {"tz": "test"}]
    assert all(call.id.startswith("call_") and call.type == "function" for call in calls)
    assert calls[0].id != calls[1].id
    assert done_events == [("get_weather", {"city": "test"}), ("get_time", {"tz": "test"})]
    assert choice.message.content == "I will run two tools at once."


def test_non_stream_matches_stream(tool_stack):
    c = client(tool_stack)
    messages = [{"role": "user", "content": "think first [[fake:tool_think_text]]"}]
    plain = c.chat.completions.create(model="GLM-4.6", messages=messages, tools=[WEATHER])
    with stream_helper(c)(model="GLM-4.6", messages=messages, tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    for reply in (plain, final):
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Let me check that for you."
        assert choice.message.tool_calls[0].function.name == "get_weather"
        assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "test"}
    # `reasoning_content` is not an OpenAI field; the SDK keeps it as an extra.
    assert plain.choices[0].message.model_extra.get("reasoning_content") == (
        "The user needs live data.\nI will call the tool."
    )


def test_unrepairable_call_is_reported_as_text(tool_stack):
    c = client(tool_stack)
    reply = c.chat.completions.create(
        model="GLM-4.6",
        messages=[{"role": "user", "content": "[[fake:tool_malformed:broken]]"}],
        tools=[WEATHER],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert "could not be used" in choice.message.content


@pytest.mark.parametrize("streamed", [False, True])
def test_three_turn_agent_loop(tool_stack, streamed):
    c = client(tool_stack)
    messages = [{"role": "user", "content": "plan my day [[fake:agent]]"}]
    results = 0
    for _turn in range(5):
        if streamed:
            with stream_helper(c)(model="GLM-4.6", messages=messages, tools=[WEATHER]) as stream:
                reply = stream.get_final_completion()
        else:
            reply = c.chat.completions.create(model="GLM-4.6", messages=messages, tools=[WEATHER])
        choice = reply.choices[0]
        if choice.finish_reason != "tool_calls":
            break
        message = choice.message
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                    for call in message.tool_calls
                ],
            }
        )
        for call in message.tool_calls:
            args = json.loads(call.function.arguments)
            results += 1
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": f"sunny in {args['city']} #{results}"}
            )
    assert results == 2, messages
    assert choice.finish_reason == "stop"
    assert choice.message.content == "Both tool calls are done. Last result: sunny in test #2"
