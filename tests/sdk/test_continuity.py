"""Conversation continuity through the official SDKs: fake-zai `--era 2026-09` keeps history on the
server (the model sees only the upstream chat's stored turns plus the new message), and
`[[fake:recall]]` answers with what the model saw. Under the `continue` history strategy a
five-turn conversation reaches the model whole, in one upstream chat; under `messages` it does not.
"""

import tempfile
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import WORKDIR, Stack

FLASH = "GLM-5.3-Flash"
RECALL = "[[fake:recall]]"
ERA = ("--era", "2026-09")


def stack_with(strategy: str) -> Stack:
    profile = Path(tempfile.mkdtemp(prefix="history-", dir=WORKDIR)) / "profile.toml"
    profile.write_text(f'[history]\nstrategy = "{strategy}"\n')
    return Stack(fake_args=ERA, env={"UPSTREAM_PROFILE": str(profile)})


@pytest.fixture(scope="module")
def continuing():
    with stack_with("continue") as s:
        yield s


def test_openai_five_turns_reach_the_model(continuing):
    c = openai.OpenAI(base_url=continuing.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "system", "content": "Speak plainly."}]
    reply = ""
    for n in range(1, 6):
        messages.append({"role": "user", "content": f"openai turn {n} {RECALL}"})
        # Streamed and not, alternately: both record the conversation.
        if n % 2:
            reply = c.chat.completions.create(model=FLASH, messages=messages).choices[0].message.content
        else:
            with c.chat.completions.stream(model=FLASH, messages=messages) as stream:
                reply = stream.get_final_completion().choices[0].message.content
        assert reply.startswith(f"saw {n} user turns and {n - 1} assistant turns"), reply
        messages.append({"role": "assistant", "content": reply})
    for n in range(1, 6):
        assert f"openai turn {n} {RECALL}" in reply
    assert "Speak plainly." in reply


def test_anthropic_five_turns_reach_the_model(continuing):
    c = anthropic.Anthropic(base_url=continuing.url, api_key="unused", max_retries=0, timeout=30)
    messages = []
    text = ""
    for n in range(1, 6):
        messages.append({"role": "user", "content": f"claude turn {n} {RECALL}"})
        reply = c.messages.create(model=FLASH, max_tokens=300, system="Be terse.", messages=messages)
        text = "".join(b.text for b in reply.content if b.type == "text")
        assert text.startswith(f"saw {n} user turns and {n - 1} assistant turns"), text
        messages.append({"role": "assistant", "content": text})
    assert "Be terse." in text


def test_messages_strategy_loses_the_context():
    with stack_with("messages") as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=30)
        messages = []
        for n in range(1, 4):
            messages.append({"role": "user", "content": f"turn {n} {RECALL}"})
            reply = c.chat.completions.create(model=FLASH, messages=messages).choices[0].message.content
            messages.append({"role": "assistant", "content": reply})
        assert reply.startswith("saw 1 user turns and 0 assistant turns"), reply
