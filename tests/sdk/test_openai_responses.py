"""The Responses API (`/v1/responses`) through the official `openai` SDK in strict mode: every
object the gateway sends must validate against the SDK's own types (`Response`, every stream
event), or the SDK raises."""

import json

import openai
import pytest

HELLO = "Hello! How can I help you today?"
REASONING = "The user says hello.\nI should greet them back."

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(stack, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=stack.url + "/v1",
        api_key=key,
        max_retries=0,
        timeout=30,
        _strict_response_validation=True,
    )


def test_create_with_reasoning(stack):
    response = client(stack).responses.create(
        model="GLM-4.6-Thinking", input="hi", instructions="Be kind.", max_output_tokens=500
    )
    assert response.status == "completed"
    assert response.output_text == HELLO
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    assert response.output[0].summary[0].text == REASONING
    assert response.instructions == "Be kind."
    assert response.max_output_tokens == 500
    assert response.model == "GLM-4.6-Thinking"
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.total_tokens > 0
    assert response.id.startswith("resp_")


def test_stream_helper_accumulates_text_and_reasoning(stack):
    c = client(stack)
    deltas, reasoning, numbers = [], [], []
    with c.responses.stream(model="GLM-4.6-Thinking", input="hi") as stream:
        for event in stream:
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.reasoning_summary_text.delta":
                reasoning.append(event.delta)
        final = stream.get_final_response()
    assert numbers == list(range(len(numbers)))
    assert "".join(deltas) == HELLO
    assert "".join(reasoning) == REASONING
    assert final.status == "completed"
    assert final.output_text == HELLO
    assert final.output[0].type == "reasoning"
    assert final.output[0].summary[0].text == REASONING
    # A streamed response is stored too.
    again = c.responses.retrieve(final.id)
    assert again.output_text == HELLO


def test_stream_helper_accumulates_function_calls(stack):
    with client(stack).responses.stream(
        model="GLM-4.6",
        input="weather and time [[fake:tool_parallel]]",
        tools=[WEATHER, {**WEATHER, "name": "get_time", "parameters": {
            "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}],
    ) as stream:
        done = [
            (e.name, json.loads(e.arguments))
            for e in stream
            if e.type == "response.function_call_arguments.done"
        ]
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "test"}),
        ("get_time", {"tz": "test"}),
    ]
    assert done == [("get_weather", {"city": "test"}), ("get_time", {"tz": "test"})]
    assert calls[0].call_id != calls[1].call_id
    assert final.output_text == "I will run two tools at once."


@pytest.mark.parametrize("streamed", [False, True])
def test_three_turn_function_calling_loop_with_previous_response_id(stack, streamed):
    c = client(stack)
    next_input = [{"role": "user", "content": "plan my day [[fake:agent]]"}]
    previous = None
    results = 0
    for _turn in range(5):
        kwargs = {"model": "GLM-4.6", "input": next_input, "tools": [WEATHER]}
        if previous:
            kwargs["previous_response_id"] = previous
        if streamed:
            with c.responses.stream(**kwargs) as stream:
                response = stream.get_final_response()
        else:
            response = c.responses.create(**kwargs)
        assert response.previous_response_id == previous
        previous = response.id
        calls = [item for item in response.output if item.type == "function_call"]
        if not calls:
            break
        next_input = []
        for call in calls:
            args = json.loads(call.arguments)
            results += 1
            next_input.append({
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": f"sunny in {args['city']} #{results}",
            })
    assert results == 2
    assert response.output_text == "Both tool calls are done. Last result: sunny in test #2"


def test_retrieve_delete_and_scoping(guarded_stack):
    c = client(guarded_stack, "sdk-test-key")
    made = c.responses.create(model="GLM-4.6", input="hi")
    got = c.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.retrieve(made.id)
    assert caught.value.code == "response_not_found"
    not_kept = c.responses.create(model="GLM-4.6", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(not_kept.id)


def test_error_shape(stack):
    c = client(stack)
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="GLM-4.6", input="hi", tools=[{"type": "file_search", "vector_store_ids": ["v"]}])
    assert caught.value.code == "invalid_request"
    assert caught.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as caught:
        c.responses.create(model="GLM-4.6", input="hi", previous_response_id="resp_nope")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.create(model="no-such-model", input="hi")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.retrieve("resp_unknown")
    assert caught.value.code == "response_not_found"


def test_stream_failure_after_the_first_byte(stack):
    events = []
    with client(stack).responses.stream(model="GLM-4.6", input="[[fake:drop]]") as stream:
        for event in stream:
            events.append(event)
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code == "server_error"
    assert any(e.type == "error" and e.code.startswith("upstream_") for e in events)
