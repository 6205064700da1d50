"""The official openai Python SDK against zai2api (in front of fake-zai)."""

import openai
import pytest

HELLO = "Hello! How can I help you today?"
REASONING = "The user says hello.\nI should greet them back."


def client(stack, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_models_list(stack):
    ids = {m.id for m in client(stack).models.list()}
    assert {"GLM-4.5", "GLM-4.6", "GLM-4.6-Thinking", "GLM-4.6-Search", "GLM-5"} <= ids


def test_non_streamed_chat_with_reasoning(stack):
    reply = client(stack).chat.completions.create(
        model="GLM-4.6-Thinking", messages=[{"role": "user", "content": "hi"}]
    )
    message = reply.choices[0].message
    assert message.content == HELLO
    assert message.reasoning_content == REASONING
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == 36
    assert reply.model == "GLM-4.6-Thinking"


def test_streamed_chat_with_reasoning_and_usage(stack):
    stream = client(stack).chat.completions.create(
        model="GLM-4.6-Thinking",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    content, reasoning, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        reasoning += getattr(delta, "reasoning_content", None) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert content == HELLO
    assert reasoning == REASONING
    assert finish == "stop"
    assert usage is not None and usage.prompt_tokens == 9 and usage.completion_tokens == 27


def test_non_streamed_message_has_refusal_null(stack):
    raw = client(stack).chat.completions.with_raw_response.create(
        model="GLM-4.6", messages=[{"role": "user", "content": "hi [[fake:plain]]"}]
    )
    message = raw.http_response.json()["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
    assert raw.parse().choices[0].message.refusal is None


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_the_token_limit_cuts_the_reply_with_length(stack, field):
    c = client(stack)
    request = dict(
        model="GLM-4.6",
        messages=[{"role": "user", "content": "long [[fake:chunks:40:100]]"}],
        **{field: 12},
    )
    reply = c.chat.completions.create(**request)
    assert reply.choices[0].finish_reason == "length"
    content = reply.choices[0].message.content
    assert 0 < len(content) < 4000 and "abcdefghijklmnopqrstuvwxyz".startswith(content[:26])
    assert 0 < reply.usage.completion_tokens <= 12
    streamed, finish, usage = "", None, None
    for chunk in c.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
        if chunk.choices:
            streamed += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert (streamed, finish) == (content, "length")
    assert usage == reply.usage
    # Room for the whole answer: `stop`.
    whole = c.chat.completions.create(
        model="GLM-4.6", max_tokens=100, messages=[{"role": "user", "content": "hi [[fake:plain]]"}]
    )
    assert whole.choices[0].finish_reason == "stop" and whole.choices[0].message.content == HELLO


def test_unknown_model_is_a_typed_not_found(stack):
    with pytest.raises(openai.NotFoundError) as err:
        client(stack).chat.completions.create(model="nope-1", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"


def test_upstream_firewall_is_a_typed_server_error(stack):
    with pytest.raises(openai.APIStatusError) as err:
        client(stack).chat.completions.create(
            model="GLM-4.5", messages=[{"role": "user", "content": "hi [[fake:firewall]]"}]
        )
    assert err.value.status_code == 502
    assert err.value.code == "upstream_firewall"
    assert "<" not in err.value.message


def test_mid_stream_failure_raises(stack):
    stream = client(stack).chat.completions.create(
        model="GLM-4.5", messages=[{"role": "user", "content": "hi [[fake:drop]]"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


def test_auth_token_is_required(guarded_stack):
    with pytest.raises(openai.AuthenticationError):
        client(guarded_stack, key="wrong").models.list()
    ids = {m.id for m in client(guarded_stack, key="sdk-test-key").models.list()}
    assert "GLM-4.6" in ids
