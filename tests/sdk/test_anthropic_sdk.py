"""The official anthropic Python SDK against zai2api's /v1/messages (in front of fake-zai)."""

import anthropic
import pytest

HELLO = "Hello! How can I help you today?"
REASONING = "The user says hello.\nI should greet them back."

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


# Thinking blocks come only when the request enables thinking, as from Anthropic's API.
THINKING_ON = {"type": "enabled", "budget_tokens": 1024}


def client(stack, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=key, max_retries=0, timeout=30)


def blocks(message) -> list[dict]:
    """Content blocks as plain dicts, for comparing two replies."""
    return [block.model_dump(exclude_none=True) for block in message.content]


def test_non_streamed_message(stack):
    reply = client(stack).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        system="You are terse.",
        messages=[{"role": "user", "content": "hi [[fake:plain]]"}],
    )
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert reply.model == "GLM-4.6"
    assert [b.type for b in reply.content] == ["text"]
    assert reply.content[0].text == HELLO
    assert reply.stop_reason == "end_turn"
    assert reply.stop_sequence is None
    assert reply.usage.input_tokens == 9 and reply.usage.output_tokens == 9


def test_stream_accumulates_thinking_and_text_like_the_non_streamed_reply(stack):
    c = client(stack)
    request = dict(
        model="GLM-4.6-Thinking",
        max_tokens=1024,
        thinking=THINKING_ON,
        messages=[{"role": "user", "content": "hi"}],
    )
    thinking, text = "", ""
    with c.messages.stream(**request) as stream:
        for event in stream:
            if event.type == "thinking":
                thinking += event.thinking
            elif event.type == "text":
                text += event.text
        final = stream.get_final_message()
    assert thinking == REASONING
    assert text == HELLO
    assert [b.type for b in final.content] == ["thinking", "text"]
    assert final.content[0].signature
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 27
    whole = c.messages.create(**request)
    assert blocks(final) == blocks(whole)
    assert final.stop_reason == whole.stop_reason
    assert final.usage == whole.usage


def test_stream_with_thinking_text_and_tool_use(stack):
    c = client(stack)
    request = dict(
        model="claude-opus-4-1",
        max_tokens=1024,
        thinking=THINKING_ON,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather in Paris? [[fake:tool_think_text]]"}],
    )
    whole = c.messages.create(**request)
    with c.messages.stream(**request) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds[0] == "thinking" and "text" in kinds and "tool_use" in kinds, kinds
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.id.startswith("toolu_")
    assert call.name == "get_weather"
    assert isinstance(call.input, dict) and "city" in call.input
    assert final.stop_reason == "tool_use"
    # Call ids are generated per reply; everything else must agree.
    for block in (*final.content, *whole.content):
        if block.type == "tool_use":
            block.id = "toolu_x"
    assert blocks(final) == blocks(whole)


@pytest.mark.parametrize("model", ["GLM-4.6-Thinking", "claude-opus-4-1"])
def test_without_thinking_in_the_request_content_0_is_the_text(stack, model):
    """Code written against Anthropic's contract: `message.content[0].text`, streamed or not."""
    c = client(stack)
    request = dict(
        model=model,
        max_tokens=1024,
        messages=[{"role": "user", "content": "hi [[fake:thinking]]"}],
    )
    reply = c.messages.create(**request)
    assert reply.content[0].text == HELLO
    assert [b.type for b in reply.content] == ["text"]
    with c.messages.stream(**request) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_message()
    assert "thinking" not in kinds, kinds
    assert final.content[0].text == HELLO
    assert blocks(final) == blocks(reply)
    # `adaptive` turns the blocks on, as `enabled` does.
    adaptive = c.messages.create(**request, thinking={"type": "adaptive"})
    assert [b.type for b in adaptive.content] == ["thinking", "text"]
    assert adaptive.content[0].thinking == REASONING


def test_max_tokens_cuts_the_reply(stack):
    c = client(stack)
    request = dict(
        model="GLM-4.6",
        max_tokens=12,
        messages=[{"role": "user", "content": "long [[fake:chunks:40:100]]"}],
    )
    reply = c.messages.create(**request)
    assert reply.stop_reason == "max_tokens"
    text = reply.content[0].text
    assert 0 < len(text) < 4000 and "abcdefghijklmnopqrstuvwxyz".startswith(text[:26])
    assert 0 < reply.usage.output_tokens <= 12
    with c.messages.stream(**request) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text
    assert final.stop_reason == "max_tokens" and final.usage == reply.usage
    # Room for the whole answer: `end_turn`, although upstream's count equals the limit.
    whole = c.messages.create(
        model="GLM-4.6", max_tokens=9, messages=[{"role": "user", "content": "hi [[fake:plain]]"}]
    )
    assert whole.stop_reason == "end_turn" and whole.content[0].text == HELLO


def test_stop_sequence(stack):
    reply = client(stack).messages.create(
        model="GLM-4.6",
        max_tokens=1024,
        stop_sequences=["help"],
        messages=[{"role": "user", "content": "hi [[fake:plain]]"}],
    )
    assert reply.content[0].text == "Hello! How can I "
    assert reply.stop_reason == "stop_sequence"
    assert reply.stop_sequence == "help"


def test_count_tokens(stack):
    counted = client(stack).messages.count_tokens(
        model="claude-sonnet-4-5",
        system="You are terse.",
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    assert counted.input_tokens > 20


def test_unknown_model_is_a_typed_not_found(stack):
    with pytest.raises(anthropic.NotFoundError) as err:
        client(stack).messages.create(
            model="nope-1", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.body["error"]["type"] == "not_found_error"


def test_missing_max_tokens_is_a_typed_bad_request(stack):
    # The SDK insists on max_tokens itself; send the raw request to see the gateway's answer.
    with pytest.raises(anthropic.BadRequestError) as err:
        client(stack).post(
            "/v1/messages",
            body={"model": "GLM-4.6", "messages": [{"role": "user", "content": "hi"}]},
            cast_to=object,
        )
    assert "max_tokens" in err.value.message


def test_mid_stream_failure_raises(stack):
    with pytest.raises(anthropic.APIError):
        with client(stack).messages.stream(
            model="GLM-4.6", max_tokens=100, messages=[{"role": "user", "content": "hi [[fake:drop]]"}]
        ) as stream:
            for _ in stream:
                pass


def test_wrong_key_is_an_authentication_error(guarded_stack):
    with pytest.raises(anthropic.AuthenticationError):
        client(guarded_stack, "wrong-key").messages.create(
            model="GLM-4.6", max_tokens=10, messages=[{"role": "user", "content": "hi [[fake:plain]]"}]
        )
    reply = client(guarded_stack, "sdk-test-key").messages.create(
        model="GLM-4.6", max_tokens=10, messages=[{"role": "user", "content": "hi [[fake:plain]]"}]
    )
    assert reply.content[0].text == HELLO


def test_three_turn_agent_loop(stack):
    """call → tool_result → call → tool_result → answer, each turn through /v1/messages."""
    c = client(stack)
    messages = [{"role": "user", "content": "Check the weather twice. [[fake:agent]]"}]
    results = ["sunny", "rainy"]
    for turn in range(3):
        reply = c.messages.create(model="GLM-4.6", max_tokens=1024, tools=[WEATHER_TOOL], messages=messages)
        if turn < 2:
            assert reply.stop_reason == "tool_use", reply
            calls = [b for b in reply.content if b.type == "tool_use"]
            assert len(calls) == 1 and calls[0].name == "get_weather"
            messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": calls[0].id, "content": results[turn]}
                    ],
                }
            )
        else:
            assert reply.stop_reason == "end_turn", reply
            assert not [b for b in reply.content if b.type == "tool_use"]
            text = "".join(b.text for b in reply.content if b.type == "text")
            assert "rainy" in text, text
