"""The official `openai` and `anthropic` SDKs against zai2api in front of fake-zai `--era 2026-09`.

The 2026-09 protocol (upstream-protocol.md §19): phase-driven streams (reasoning in `thinking`
frames, tool calls as `delta_name`/`delta_arguments` fragments, hidden `tool_response`s, usage
possibly before the last answer delta), `features.reasoning_effort` validated by upstream, the
2026-09 model list (guests: `x-preview-l` = GLM-5.3-Flash and `glm-4.7` only), and a guest session
instead of a 401 for a stale token.

fake-zai has no inspection route, so every assertion is on what an SDK client sees. The fake is
strict where it matters: an effort it does not accept is an HTTP 400 (`Invalid reasoning_effort`),
also for a model without the `reasoning_effort` capability, so a reply at all proves what the
gateway sent. Exact texts come from crates/fake-zai (`scenarios::texts`, `phase.rs`,
`tools::texts`, the two reconstructed 2026-09 fixtures).
"""

import json

import anthropic
import openai
import pytest

from conftest import Stack

# --- fake-zai texts -------------------------------------------------------------------------
HELLO = "Hello! How can I help you today?"
REASONING = "The user says hello.\nI should greet them back."
SEARCH_ANSWER = "Today's top story: Example headline【turn0search0】."
# The two thinking runs around the hidden search call; the gateway separates runs with a blank line.
SEARCH_REASONING = "Need fresh news; search first.\n\nOne relevant result found."
BEFORE_CALL = "Let me check that for you."
THINK_REASONING = "The user needs live data.\nI will call the tool."
BEFORE_PARALLEL = "I will run two tools at once."
AFTER_CALL_REASONING = "The function runs on the client; waiting."
AFTER_CALL_TEXT = "I am waiting for the function result."
# `replay_phase`: turn 1 of the 2026-09 browser capture (GLM-5.3-Flash, "hey hi").
REPLAY_PHASE_ANSWER = (
    "Hello! I'm GLM, an AI assistant trained by Z.ai. How can I help you today? "
    "Feel free to ask any questions or share topics you'd like to discuss."
)
REPLAY_PHASE_REASONING_START = "Let me analyze this greeting and consider how to respond appropriately."
REPLAY_PHASE_REASONING_END = "while maintaining professionalism."
# `replay_search`: the abridged deep-search turn.
REPLAY_SEARCH_ANSWER = (
    "Here's a deep-dive on where Elon Musk is right now and what's coming next for him, "
    "based on the latest reporting as of mid-September 2026.【turn0search0】"
)
REPLAY_SEARCH_REASONING = (
    "The user's query is garbled: \"whats next elonmkusk goad of towdy\" - this likely means "
    "\"what's next Elon Musk goals of today\" or \"what's next Elon Musk plans today\". The user "
    "wants deep search on Elon Musk's next goals/today's news. Let me search for recent Elon Musk "
    "news and announcements.\n\nLet me analyze the search results: the user wants recent news about "
    "Elon Musk; the first results cover his space plans for this year."
)
# Bits of the hidden `tool_response`s that must never reach a client.
SEARCH_RESULT_MARKERS = ("ref_id", "Date: Sep", "news.example.com", "nypost.com", "search_query")

FLASH = "GLM-5.3-Flash"  # x-preview-l: always thinks, takes reasoning_effort, guests may use it

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
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": WEATHER["function"]["parameters"],
}

def era_env(**extra: str) -> dict[str, str]:
    # The built-in profile is today's site: no profile file.
    env = {
        "TOOL_STRATEGY": "native",
        # Guests may use only GLM-5.3-Flash (and GLM-4.7) in this era.
        "ANTHROPIC_MODEL_MAP": f"claude-*={FLASH}",
        "ANTHROPIC_DEFAULT_MODEL": FLASH,
    }
    env.update(extra)
    return env


ERA = ("--era", "2026-09")


@pytest.fixture(scope="module")
def era():
    with Stack(fake_args=ERA, env=era_env()) as s:
        yield s


def oai(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + "/v1", api_key="unused", max_retries=0, timeout=30)


def ant(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0, timeout=30)


def stream_helper(c: openai.OpenAI):
    completions = c.chat.completions
    return completions.stream if hasattr(completions, "stream") else c.beta.chat.completions.stream


def reasoning_of(message) -> str | None:
    """`reasoning_content` is not an OpenAI field; the SDK keeps it as an extra."""
    return (message.model_extra or {}).get("reasoning_content")


def collect(stream) -> dict:
    """Reads a raw `create(stream=True)` stream into its parts."""
    out = {"content": "", "reasoning": "", "finish": None, "usage": None, "reasoning_deltas": 0,
           "content_deltas": 0}
    for chunk in stream:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            out["content"] += delta.content
            out["content_deltas"] += 1
        piece = (delta.model_extra or {}).get("reasoning_content")
        if piece:
            out["reasoning"] += piece
            out["reasoning_deltas"] += 1
        out["finish"] = chunk.choices[0].finish_reason or out["finish"]
    return out


def streamed(c: openai.OpenAI, **request) -> dict:
    return collect(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **request))


def usage_tuple(usage) -> tuple:
    cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) if usage.prompt_tokens_details else None
    return (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, cached)


def blocks(message) -> list[dict]:
    return [block.model_dump(exclude_none=True) for block in message.content]


# --- the stack itself -------------------------------------------------------------------------


def test_builtin_profile_works_against_the_era():
    env = era_env()
    with Stack(fake_args=ERA, env=env) as s:
        reply = oai(s).chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == HELLO


def test_models_list_is_the_2026_09_catalogue(era):
    ids = [m.id for m in oai(era).models.list()]
    assert ids[0] == FLASH, ids
    assert {FLASH, "GLM-5.3", "GLM-5.2", "GLM-4.7", "GLM-4.5", "GLM-5.3-Flash-Search", "GLM-4.7-Thinking"} <= set(ids)
    # 2026-03 models are gone (never silently mapped to a new one).
    assert "GLM-4.6" not in ids and "GLM-5" not in ids
    with pytest.raises(openai.NotFoundError) as err:
        oai(era).chat.completions.create(model="GLM-4.6", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found"


# --- reasoning --------------------------------------------------------------------------------


def test_flash_always_thinks_and_reasoning_is_separate(era):
    reply = oai(era).chat.completions.create(model=FLASH, messages=[{"role": "user", "content": "hi"}])
    message = reply.choices[0].message
    assert message.content == HELLO
    assert reasoning_of(message) == REASONING
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == FLASH
    assert usage_tuple(reply.usage)[:3] == (9, 27, 36)


def test_stream_equals_non_stream_with_usage_before_the_last_delta(era):
    """The fake sends the usage frame before the last answer delta (" help you today?")."""
    c = oai(era)
    request = dict(model=FLASH, messages=[{"role": "user", "content": "hi [[fake:thinking]]"}])
    whole = c.chat.completions.create(**request)
    parts = streamed(c, **request)
    assert parts["content"] == whole.choices[0].message.content == HELLO
    assert parts["reasoning"] == reasoning_of(whole.choices[0].message) == REASONING
    assert parts["reasoning_deltas"] >= 2 and parts["content_deltas"] >= 2, parts
    assert parts["finish"] == whole.choices[0].finish_reason == "stop"
    assert usage_tuple(parts["usage"]) == usage_tuple(whole.usage)
    assert (parts["usage"].prompt_tokens, parts["usage"].completion_tokens) == (9, 27)


@pytest.mark.parametrize("effort", ["low", "high", "max", "minimal", "medium", "xhigh"])
def test_reasoning_effort_levels_are_accepted_upstream(era, effort):
    """Upstream 400s anything but low/medium/high/max, so `minimal`/`xhigh` must be translated."""
    reply = oai(era).chat.completions.create(
        model=FLASH, reasoning_effort=effort, messages=[{"role": "user", "content": "hi"}]
    )
    message = reply.choices[0].message
    assert message.content == HELLO
    assert reasoning_of(message) == REASONING


@pytest.mark.parametrize("effort", ["low", "high", "max"])
def test_reasoning_effort_on_a_model_without_the_capability_still_thinks(era, effort):
    """GLM-4.7 has no `reasoning_effort` capability (upstream would 400 the field) but can think."""
    reply = oai(era).chat.completions.create(
        model="GLM-4.7", reasoning_effort=effort, messages=[{"role": "user", "content": "hi"}]
    )
    message = reply.choices[0].message
    assert message.content == HELLO
    assert reasoning_of(message) == REASONING
    assert reply.usage.completion_tokens == 27


def test_reasoning_effort_none_hides_reasoning_of_an_always_thinking_model(era):
    c = oai(era)
    request = dict(model=FLASH, reasoning_effort="none", messages=[{"role": "user", "content": "hi"}])
    whole = c.chat.completions.create(**request)
    message = whole.choices[0].message
    assert message.content == HELLO
    assert not reasoning_of(message)
    # The model thought anyway (it cannot skip it): upstream's usage says so.
    assert whole.usage.completion_tokens == 27
    parts = streamed(c, **request)
    assert parts["content"] == HELLO
    assert parts["reasoning"] == "" and parts["reasoning_deltas"] == 0
    assert parts["finish"] == "stop"


def test_reasoning_effort_none_switches_thinking_off_where_it_can(era):
    """GLM-4.7-Thinking thinks by name; `none` wins and upstream really does not think."""
    c = oai(era)
    thinking = c.chat.completions.create(model="GLM-4.7-Thinking", messages=[{"role": "user", "content": "hi"}])
    assert reasoning_of(thinking.choices[0].message) == REASONING
    off = c.chat.completions.create(
        model="GLM-4.7-Thinking", reasoning_effort="none", messages=[{"role": "user", "content": "hi"}]
    )
    assert off.choices[0].message.content == HELLO
    assert not reasoning_of(off.choices[0].message)
    # The fake answered with its non-thinking scenario: enable_thinking was false upstream.
    assert (off.usage.prompt_tokens, off.usage.completion_tokens) == (9, 9)


def test_unknown_reasoning_effort_is_a_typed_bad_request(era):
    with pytest.raises(openai.BadRequestError) as err:
        oai(era).chat.completions.create(
            model=FLASH, reasoning_effort="extreme", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.param == "reasoning_effort"


# --- guests and tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_guest_gets_a_typed_error_for_glm_5_3(era, stream):
    c = oai(era)
    with pytest.raises(openai.PermissionDeniedError) as err:
        reply = c.chat.completions.create(model="GLM-5.3", messages=[{"role": "user", "content": "hi"}], stream=stream)
        if stream:
            for _ in reply:
                pass
    assert err.value.status_code == 403
    assert err.value.code == "upstream_model_not_available"
    # GLM-4.7 is open to guests.
    ok = c.chat.completions.create(model="GLM-4.7", messages=[{"role": "user", "content": "hi [[fake:plain]]"}])
    assert ok.choices[0].message.content == HELLO


def test_stale_token_downgraded_to_guest_is_refused():
    """Upstream answers an unknown Bearer with a fresh guest session; the gateway must notice."""
    env = era_env(TOKEN="stale-token-nobody-issued", ANONYMOUS_MODE="false")
    with Stack(fake_args=ERA, env=env) as s:
        with pytest.raises(openai.APIStatusError) as err:
            oai(s).chat.completions.create(model="GLM-4.7", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "upstream_token_invalid"
    assert "guest" in err.value.message


def test_logged_in_token_may_use_glm_5_3():
    with Stack(token="sdk-era-token", fake_args=ERA, env=era_env()) as s:
        reply = oai(s).chat.completions.create(model="GLM-5.3", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == HELLO
    assert reasoning_of(reply.choices[0].message) == REASONING
    assert reply.model == "GLM-5.3"


# --- search results stay hidden ---------------------------------------------------------------


def assert_no_search_results(*texts: str) -> None:
    for text in texts:
        for marker in SEARCH_RESULT_MARKERS:
            assert marker not in text, (marker, text)


def test_search_turn_openai(era):
    c = oai(era)
    request = dict(model=FLASH, messages=[{"role": "user", "content": "news today [[fake:search]]"}])
    whole = c.chat.completions.create(**request)
    message = whole.choices[0].message
    assert message.content == SEARCH_ANSWER
    assert reasoning_of(message) == SEARCH_REASONING
    assert message.tool_calls is None
    assert_no_search_results(message.content, reasoning_of(message))
    # One usage per hop, summed: 812+1530 / 41+64, cached 512+812.
    assert usage_tuple(whole.usage) == (2342, 105, 2447, 1324)
    parts = streamed(c, **request)
    assert (parts["content"], parts["reasoning"]) == (SEARCH_ANSWER, SEARCH_REASONING)
    assert parts["finish"] == "stop"
    assert usage_tuple(parts["usage"]) == usage_tuple(whole.usage)


def test_replayed_search_capture_openai(era):
    c = oai(era)
    request = dict(model=FLASH, messages=[{"role": "user", "content": "whats next [[fake:replay_search]]"}])
    whole = c.chat.completions.create(**request)
    message = whole.choices[0].message
    assert message.content == REPLAY_SEARCH_ANSWER
    assert reasoning_of(message) == REPLAY_SEARCH_REASONING
    assert_no_search_results(message.content, reasoning_of(message))
    assert usage_tuple(whole.usage) == (1921 + 3678, 206 + 263, 2127 + 3941, 1536 + 1920)
    parts = streamed(c, **request)
    assert (parts["content"], parts["reasoning"]) == (REPLAY_SEARCH_ANSWER, REPLAY_SEARCH_REASONING)
    assert usage_tuple(parts["usage"]) == usage_tuple(whole.usage)


def test_replayed_phase_capture_openai(era):
    c = oai(era)
    request = dict(model=FLASH, messages=[{"role": "user", "content": "hey hi [[fake:replay_phase]]"}])
    whole = c.chat.completions.create(**request)
    message = whole.choices[0].message
    # The final "." arrives after the usage frame and must not be lost.
    assert message.content == REPLAY_PHASE_ANSWER
    reasoning = reasoning_of(message)
    assert reasoning.startswith(REPLAY_PHASE_REASONING_START) and reasoning.endswith(REPLAY_PHASE_REASONING_END)
    assert "Hello!" not in reasoning
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (14, 184)
    parts = streamed(c, **request)
    assert (parts["content"], parts["reasoning"]) == (REPLAY_PHASE_ANSWER, reasoning)
    assert parts["reasoning_deltas"] >= 20
    assert (parts["usage"].prompt_tokens, parts["usage"].completion_tokens) == (14, 184)


def test_search_turn_anthropic(era):
    c = ant(era)
    request = dict(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[{"role": "user", "content": "news today [[fake:search]]"}],
    )
    whole = c.messages.create(**request)
    assert whole.model == FLASH
    # One thinking block per thinking run (before and after the hidden search call).
    assert [b.type for b in whole.content] == ["thinking", "thinking", "text"]
    assert [b.thinking for b in whole.content[:2]] == SEARCH_REASONING.split("\n\n")
    assert whole.content[2].text == SEARCH_ANSWER
    assert_no_search_results(whole.content[0].thinking, whole.content[1].thinking, whole.content[2].text)
    with c.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == SEARCH_ANSWER
    assert blocks(final) == blocks(whole)
    assert final.usage == whole.usage


# --- OpenAI native tool calls -----------------------------------------------------------------


def test_stream_helper_accumulates_fragmented_parallel_calls(era):
    c = oai(era)
    request = dict(
        model=FLASH,
        messages=[{"role": "user", "content": "weather and time [[fake:tool_parallel]]"}],
        tools=[WEATHER, CLOCK],
    )
    arg_deltas: dict[int, int] = {}
    done_events = []
    with stream_helper(c)(**request) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.delta":
                arg_deltas[event.index] = arg_deltas.get(event.index, 0) + 1
            elif event.type == "tool_calls.function.arguments.done":
                done_events.append((event.name, json.loads(event.arguments)))
        final = stream.get_final_completion()
    # The fake cuts each call's arguments into 4 fragments; they arrive as separate deltas.
    assert arg_deltas.get(0, 0) >= 3 and arg_deltas.get(1, 0) >= 3, arg_deltas
    assert done_events == [("get_weather", {"city": "test"}), ("get_time", {"tz": "test"})]
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [(call.id, call.type, call.function.name) for call in calls] == [
        ("call_00000000000000000000fa11", "function", "get_weather"),
        ("call_00000000000000000000fa12", "function", "get_time"),
    ]
    assert [json.loads(call.function.arguments) for call in calls] == [{"city": "test"}, {"tz": "test"}]
    # What upstream streams after a client-function call is dropped.
    assert choice.message.content == BEFORE_PARALLEL
    whole = c.chat.completions.create(**request)
    message = whole.choices[0].message
    assert whole.choices[0].finish_reason == "tool_calls"
    assert message.content == BEFORE_PARALLEL
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        (t.id, t.function.name, t.function.arguments) for t in calls
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_text_and_call_drop_what_follows_the_call(era, stream):
    c = oai(era)
    request = dict(model=FLASH, messages=[{"role": "user", "content": "think [[fake:tool_think_text]]"}], tools=[WEATHER])
    if stream:
        with stream_helper(c)(**request) as s:
            reply = s.get_final_completion()
    else:
        reply = c.chat.completions.create(**request)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == BEFORE_CALL
    assert reasoning_of(choice.message) == THINK_REASONING
    assert AFTER_CALL_REASONING not in (reasoning_of(choice.message) or "")
    assert AFTER_CALL_TEXT not in choice.message.content
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "test"}


def test_native_call_turn_reports_upstream_usage(era):
    reply = oai(era).chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "think [[fake:tool_think_text]]"}], tools=[WEATHER]
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    usage = (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    # The hop's own usage, or both usage frames summed (the gateway's rule for search hops).
    assert usage in {(100, 20), (220, 50)}, usage


@pytest.mark.parametrize("streamed_turns", [False, True])
def test_three_turn_agent_loop(era, streamed_turns):
    c = oai(era)
    messages = [{"role": "user", "content": "plan my day [[fake:agent]]"}]
    results = 0
    for _turn in range(5):
        if streamed_turns:
            with stream_helper(c)(model=FLASH, messages=messages, tools=[WEATHER]) as stream:
                reply = stream.get_final_completion()
        else:
            reply = c.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER])
        choice = reply.choices[0]
        if choice.finish_reason != "tool_calls":
            break
        assert AFTER_CALL_TEXT not in (choice.message.content or "")
        messages.append({
            "role": "assistant",
            "content": choice.message.content,
            "tool_calls": [
                {"id": t.id, "type": "function", "function": {"name": t.function.name, "arguments": t.function.arguments}}
                for t in choice.message.tool_calls
            ],
        })
        for t in choice.message.tool_calls:
            results += 1
            city = json.loads(t.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": t.id, "content": f"sunny in {city} #{results}"})
    assert results == 2, messages
    assert choice.finish_reason == "stop"
    assert choice.message.content == "Both tool calls are done. Last result: sunny in test #2"


# --- Anthropic --------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1024, 2048, 16000, 64000])
def test_anthropic_thinking_enabled_gives_a_thinking_block(era, budget):
    """Each budget picks an effort upstream must accept (it 400s unknown ones)."""
    c = ant(era)
    request = dict(
        model="claude-sonnet-4-5",
        max_tokens=100000,
        thinking={"type": "enabled", "budget_tokens": budget},
        messages=[{"role": "user", "content": "hi"}],
    )
    whole = c.messages.create(**request)
    assert whole.model == FLASH
    assert [b.type for b in whole.content] == ["thinking", "text"]
    assert whole.content[0].thinking == REASONING and whole.content[0].signature
    assert whole.content[1].text == HELLO
    assert whole.stop_reason == "end_turn"
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (9, 27)
    thinking = ""
    with c.messages.stream(**request) as stream:
        for event in stream:
            if event.type == "thinking":
                thinking += event.thinking
        final = stream.get_final_message()
    assert thinking == REASONING
    assert blocks(final) == blocks(whole)
    assert final.usage == whole.usage


def test_anthropic_thinking_disabled_has_no_thinking_block(era):
    c = ant(era)
    request = dict(
        model="claude-haiku-4-5",
        max_tokens=1024,
        thinking={"type": "disabled"},
        messages=[{"role": "user", "content": "hi"}],
    )
    whole = c.messages.create(**request)
    assert [b.type for b in whole.content] == ["text"]
    assert whole.content[0].text == HELLO
    kinds = set()
    with c.messages.stream(**request) as stream:
        for event in stream:
            kinds.add(event.type)
            if event.type == "content_block_start":
                assert event.content_block.type == "text", event
        final = stream.get_final_message()
    assert "thinking" not in kinds and "text" in kinds
    assert blocks(final) == blocks(whole)


def test_anthropic_stream_accumulates_a_fragmented_tool_use(era):
    c = ant(era)
    request = dict(
        model="claude-opus-4-1",
        max_tokens=1024,
        thinking={"type": "enabled", "budget_tokens": 4096},
        tools=[ANTHROPIC_WEATHER],
        messages=[{"role": "user", "content": "weather? [[fake:tool_a]]"}],
    )
    json_deltas = []
    with c.messages.stream(**request) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                json_deltas.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert len(json_deltas) >= 3, json_deltas
    assert json.loads("".join(json_deltas)) == {"city": "test"}
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "The user wants get_weather.\nI will call the tool now."
    assert final.content[1].text == "I will call the tool now."
    call = final.content[2]
    assert (call.id, call.name, call.input) == ("toolu_0f1e2d3c4b5a69788796a5b4", "get_weather", {"city": "test"})
    assert final.stop_reason == "tool_use"
    for text in (final.content[0].thinking, final.content[1].text):
        assert "The tool call finished" not in text and "The tool returned a result" not in text
    whole = c.messages.create(**request)
    assert blocks(final) == blocks(whole)
    assert final.stop_reason == whole.stop_reason
    assert final.usage == whole.usage


def test_anthropic_parallel_tool_uses(era):
    c = ant(era)
    clock = {"name": "get_time", "input_schema": CLOCK["function"]["parameters"]}
    request = dict(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        tools=[ANTHROPIC_WEATHER, clock],
        messages=[{"role": "user", "content": "weather and time [[fake:tool_parallel]]"}],
    )
    with c.messages.stream(**request) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "test"}), ("get_time", {"tz": "test"})]
    assert uses[0].id != uses[1].id
    texts = [b.text for b in final.content if b.type == "text"]
    assert texts == [BEFORE_PARALLEL]
    assert final.stop_reason == "tool_use"
    assert blocks(final) == blocks(c.messages.create(**request))


def test_anthropic_agent_loop(era):
    c = ant(era)
    messages = [{"role": "user", "content": "Check the weather twice. [[fake:agent]]"}]
    for turn, result in enumerate(["sunny", "rainy", None]):
        reply = c.messages.create(
            model="claude-sonnet-4-5", max_tokens=1024, tools=[ANTHROPIC_WEATHER], messages=messages
        )
        if result is None:
            break
        assert reply.stop_reason == "tool_use", (turn, reply)
        [call] = [b for b in reply.content if b.type == "tool_use"]
        assert call.name == "get_weather" and call.input == {"city": "test"}
        messages.append({"role": "assistant", "content": blocks(reply)})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]})
    assert reply.stop_reason == "end_turn"
    assert not [b for b in reply.content if b.type == "tool_use"]
    assert [b.text for b in reply.content if b.type == "text"] == ["Both tool calls are done. Last result: rainy"]
