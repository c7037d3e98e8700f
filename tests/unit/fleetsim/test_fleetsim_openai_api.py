from __future__ import annotations

import json
from typing import Any

import pytest

from apps.fleetsim import openai_api as oai


def _raw(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def test_estimate_text_tokens__four_characters_per_token__rounded_up() -> None:
    assert oai.estimate_text_tokens("") == 0
    assert oai.estimate_text_tokens("a") == 1
    assert oai.estimate_text_tokens("abcd") == 1
    assert oai.estimate_text_tokens("abcde") == 2
    assert oai.estimate_text_tokens("x" * 400) == 100


def test_parse_completion__string_prompt__estimated_tokens_and_options() -> None:
    request = oai.parse_completion(
        _raw(
            {
                "model": "m",
                "prompt": "x" * 41,
                "max_tokens": 7,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
    )

    assert request.kind == "completion"
    assert request.model == "m"
    assert request.prompt_tokens == 11
    assert request.max_tokens == 7
    assert request.stream is True
    assert request.include_usage is True


def test_parse_completion__token_ids_or_batch_of_one__counted_per_id() -> None:
    assert oai.parse_completion(_raw({"model": "m", "prompt": [1, 2, 3]})).prompt_tokens == 3
    assert oai.parse_completion(_raw({"model": "m", "prompt": ["abcdefgh"]})).prompt_tokens == 2


def test_parse_chat_completion__messages__content_plus_per_message_overhead() -> None:
    request = oai.parse_chat_completion(
        _raw(
            {
                "model": "m",
                "messages": [
                    {"role": "system", "content": "x" * 8},
                    {"role": "user", "content": [{"type": "text", "text": "y" * 5}]},
                ],
                "max_completion_tokens": 3,
            }
        )
    )

    overhead = 2 * oai.CHAT_MESSAGE_OVERHEAD + oai.CHAT_REPLY_OVERHEAD
    assert request.kind == "chat"
    assert request.prompt_tokens == overhead + 2 + 2
    assert request.max_tokens == 3
    assert request.stream is False


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "", "prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": ""}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": [1, -2]}, "prompt"),
        ({"model": "m", "prompt": [True]}, "prompt"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "prompt": "x", "max_tokens": 2.5}, "max_tokens"),
        ({"model": "m", "prompt": "x", "max_tokens": True}, "max_tokens"),
        ({"model": "m", "prompt": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "prompt": "x", "n": 2}, "n"),
        ({"model": "m", "prompt": "x", "stream": True, "stream_options": []}, "stream_options"),
        (
            {"model": "m", "prompt": "x", "stream": True, "stream_options": {"include_usage": 1}},
            "stream_options",
        ),
        ({"model": "m", "prompt": "x", "stream_options": {"include_usage": True}}, None),
    ],
)
def test_parse_completion__invalid_field__invalid_request_naming_it(
    payload: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(oai.InvalidRequest) as caught:
        oai.parse_completion(_raw(payload))

    assert caught.value.param == param


@pytest.mark.parametrize(
    "messages",
    [
        [],
        "hello",
        [{"role": "wizard", "content": "x"}],
        [{"role": "user", "content": 3}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        ["user: hi"],
    ],
)
def test_parse_chat_completion__bad_messages__invalid_request(messages: Any) -> None:
    with pytest.raises(oai.InvalidRequest) as caught:
        oai.parse_chat_completion(_raw({"model": "m", "messages": messages}))

    assert caught.value.param == "messages"


@pytest.mark.parametrize("raw", [b"{nope", b"\xff\xfe", b"[1]", b"null"])
def test_parse_completion__not_a_json_object__invalid_request(raw: bytes) -> None:
    with pytest.raises(oai.InvalidRequest):
        oai.parse_completion(raw)


def test_output_tokens__max_tokens_below_natural_length__cut_with_length() -> None:
    request = oai.parse_completion(_raw({"model": "m", "prompt": "hello", "max_tokens": 1}))
    natural = oai.natural_output_tokens(request.fingerprint)

    assert request.output_tokens() == (1, "length")
    roomy = oai.parse_completion(_raw({"model": "m", "prompt": "hello", "max_tokens": 10_000}))
    assert roomy.output_tokens() == (natural, "stop")
    assert oai.parse_completion(_raw({"model": "m", "prompt": "hello"})).output_tokens() == (
        natural,
        "stop",
    )


def test_natural_output_tokens__per_prompt__stable_and_bounded() -> None:
    lengths = {oai.natural_output_tokens(f"prompt {i}") for i in range(200)}

    assert oai.natural_output_tokens("same") == oai.natural_output_tokens("same")
    assert min(lengths) >= oai.MIN_NATURAL_TOKENS
    assert max(lengths) <= oai.MAX_NATURAL_TOKENS
    assert len(lengths) > 50


def test_token_text__sequence__one_word_per_token() -> None:
    text = "".join(oai.token_text(i) for i in range(40))

    assert len(text.split()) == 40
    assert not text.startswith(" ")


def test_sse__json_and_done__data_lines_with_blank_line() -> None:
    assert oai.sse({"a": 1}) == b'data: {"a":1}\n\n'
    assert oai.sse("[DONE]") == b"data: [DONE]\n\n"


def test_stream_chunk__usage_requested__null_until_the_usage_only_chunk() -> None:
    common: dict[str, Any] = {"response_id": "cmpl-1", "created": 1, "model": "m"}

    token = oai.stream_chunk("completion", text="hi", include_usage=True, **common)
    last = oai.stream_chunk(
        "completion", text=None, usage=oai.usage_body(3, 4), include_usage=True, **common
    )
    plain = oai.stream_chunk("chat", text="hi", **common)

    assert token["usage"] is None
    assert token["choices"][0]["text"] == "hi"
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert "usage" not in plain
    assert plain["object"] == "chat.completion.chunk"
    assert plain["choices"][0]["delta"] == {"content": "hi"}


def test_stream_chunk__first_chat_chunk__names_the_assistant_role() -> None:
    chunk = oai.stream_chunk("chat", response_id="c", created=1, model="m", text="a", first=True)

    assert chunk["choices"][0]["delta"] == {"role": "assistant", "content": "a"}


def test_response_body__chat_and_completion__message_or_text_with_usage() -> None:
    common: dict[str, Any] = {
        "response_id": "x",
        "created": 1,
        "model": "m",
        "text": "hello there",
        "finish_reason": "stop",
        "prompt_tokens": 5,
        "completion_tokens": 2,
    }

    chat = oai.response_body("chat", **common)
    completion = oai.response_body("completion", **common)

    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "hello there"}
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == "hello there"
    assert completion["usage"] == chat["usage"] == oai.usage_body(5, 2)


def test_error_body__openai_envelope() -> None:
    assert oai.error_body("no", error_type="invalid_request_error", param="model") == {
        "error": {"message": "no", "type": "invalid_request_error", "param": "model", "code": None}
    }
