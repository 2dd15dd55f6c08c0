"""OpenAIGenerator against a local server speaking the chat-completions wire format (never the internet)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest

from rag.answer.dialogue import GenerationRequest, Generator, Message, Reply, Role, ToolCall, Usage
from rag.answer.generators.openai import OpenAIGenerator, _openai_errors
from rag.answer.generators.status import Server
from rag.answer.prompts import search_tool
from rag.errors import ConfigError, GenerationError
from rag.types import JsonValue
from tests.llm_server import (
    MODEL,
    LlmServer,
    Respond,
    Stream,
    closed_port_url,
    openai_completion,
    openai_error,
    openai_stream,
    serve,
)

KEY = "sk-test-9f3c1b7e-not-a-real-key"
QUESTION = "How often is the air filter replaced?"
SYSTEM = Message(Role.SYSTEM, "Answer only from the passages and cite them as [n].")
USER = Message(Role.USER, f"<passage number=\"1\">Der Luftfilter wird alle sechs Monate gewechselt.</passage>\n{QUESTION}")
ARGUMENTS: dict[str, JsonValue] = {"query": "Luftfilter wechseln", "languages": ["de"]}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


def _openai(server: LlmServer, timeout: float = 2.0, max_retries: int = 2) -> OpenAIGenerator:
    return OpenAIGenerator.load(MODEL, base_url=f"{server.url}/v1", timeout=timeout, max_retries=max_retries,
                                environ={"OPENAI_API_KEY": KEY})


def _request(*messages: Message, tools: bool = False) -> GenerationRequest:
    return GenerationRequest(messages or (SYSTEM, USER), (), QUESTION, "en",
                             tools=(search_tool(),) if tools else (), max_tokens=200, temperature=0.2)


def _failure(call: Callable[[], object]) -> str:
    """The GenerationError ``call`` raises, as text, checked not to contain the key."""
    with pytest.raises(GenerationError) as error:
        call()
    assert KEY not in str(error.value) and KEY not in repr(error.value)
    return str(error.value)


def _streamed(generator: OpenAIGenerator, request: GenerationRequest) -> list[str | Reply]:
    return list(generator.stream(request))


def _wire(*messages: Message) -> list[dict[str, object]]:
    return [{"role": m.role.value, "content": m.content} for m in messages]


def test_plain_reply_and_the_exact_request(server: LlmServer) -> None:
    server.script(openai_completion("The air filter is replaced every six months [1]."))
    generator: Generator = _openai(server)
    reply = generator.generate(_request())
    assert reply == Reply("The air filter is replaced every six months [1].", usage=Usage(12, 5), model=MODEL,
                          finish_reason="stop", seconds=reply.seconds)
    (sent,) = server.requests
    assert (sent.path, sent.headers["authorization"]) == ("/v1/chat/completions", f"Bearer {KEY}")
    assert sent.body == {"model": MODEL, "messages": _wire(SYSTEM, USER), "temperature": 0.2, "max_tokens": 200}
    assert (generator.name, generator.supports_tools, generator.is_llm, generator.native_documents) == (
        f"openai:{MODEL}", True, True, False)
    assert KEY not in repr(generator)


def test_tools_tool_turns_and_parsed_tool_calls(server: LlmServer) -> None:
    server.script(openai_completion(None, [("call_2", "search", json.dumps(ARGUMENTS))], "tool_calls"))
    call = ToolCall("call_1", "search", {"query": "air filter"})
    turns = (SYSTEM, USER, Message(Role.ASSISTANT, "", (call,)),
             Message(Role.TOOL, "No passages found.", tool_call_id="call_1"))
    reply = _openai(server).generate(_request(*turns, tools=True))
    assert reply == Reply("", (ToolCall("call_2", "search", ARGUMENTS),), usage=Usage(12, 5), model=MODEL,
                          finish_reason="tool_calls", seconds=reply.seconds)
    spec = search_tool()
    assert server.requests[0].body == {
        "model": MODEL, "temperature": 0.2, "max_tokens": 200,
        "messages": [*_wire(SYSTEM, USER),
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"id": "call_1", "type": "function",
                          "function": {"name": "search", "arguments": '{"query": "air filter"}'}}]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "No passages found."}],
        "tools": [{"type": "function", "function": {"name": "search", "description": spec.description,
                                                    "parameters": spec.parameters}}]}


def test_stream_yields_deltas_then_the_joined_reply(server: LlmServer) -> None:
    deltas = ["The air filter ", "is replaced every ", "six months [1]."]
    server.script(openai_stream(deltas, usage=(40, 9)))
    pieces = _streamed(_openai(server), _request())
    reply = pieces[-1]
    assert isinstance(reply, Reply)
    assert pieces == [*deltas, Reply("".join(deltas), usage=Usage(40, 9), model=MODEL, finish_reason="stop",
                                     seconds=reply.seconds)]
    body = server.requests[0].body
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


def test_stream_accumulates_tool_call_deltas(server: LlmServer) -> None:
    pieces = ['{"query": "Luft', 'filter wechseln", "lang', 'uages": ["de"]}']
    server.script(openai_stream([], [("call_7", "search", pieces)], "tool_calls"))
    reply = _streamed(_openai(server), _request(tools=True))[-1]
    assert isinstance(reply, Reply)
    assert (reply.text, reply.tool_calls, reply.finish_reason) == (
        "", (ToolCall("call_7", "search", ARGUMENTS),), "tool_calls")


@pytest.mark.parametrize("arguments", ['{"query": "Luft', '["Luftfilter"]'])
def test_malformed_tool_arguments(server: LlmServer, arguments: str) -> None:
    server.script(openai_completion(None, [("call_3", "search", arguments)], "tool_calls"))
    assert _failure(lambda: _openai(server).generate(_request(tools=True))) == (
        f"the model sent malformed tool arguments for 'search' (not a JSON object: {arguments!r}); retry, or use "
        "a model that supports tool calling")


def test_finish_reason_length_passes_through(server: LlmServer) -> None:
    server.script(openai_completion("The air filter is", finish_reason="length"),
                  openai_stream(["The air filter is"], finish_reason="length"))
    generator = _openai(server)
    whole = generator.generate(_request())
    streamed = _streamed(generator, _request())[-1]
    assert isinstance(streamed, Reply)
    assert (whole.finish_reason, streamed.finish_reason, streamed.text) == ("length", "length", "The air filter is")


def test_retries_after_429_then_succeeds(server: LlmServer) -> None:
    server.script(openai_error(429, "Rate limit reached for requests"), openai_completion("Every six months [1]."))
    assert _openai(server).generate(_request()).text == "Every six months [1]."
    assert len(server.requests) == 2


def test_stream_start_is_retried_too(server: LlmServer) -> None:
    server.script(openai_error(503, "overloaded"), openai_stream(["Every six months [1]."]))
    assert _streamed(_openai(server), _request())[0] == "Every six months [1]."
    assert len(server.requests) == 2


def test_timeout_is_retried_by_the_sdk(server: LlmServer) -> None:
    server.script(openai_completion("late", delay=1.0), openai_completion("Every six months [1]."))
    assert _openai(server, timeout=0.3, max_retries=1).generate(_request()).text == "Every six months [1]."


def test_unauthorized_names_the_variable_not_the_key(server: LlmServer) -> None:
    server.script(openai_error(401, f"Incorrect API key provided: {KEY}. Find your key at platform.openai.com"))
    assert _failure(lambda: _openai(server).generate(_request())) == (
        f"OpenAI-compatible server at {server.url}/v1 rejected the API key (HTTP 401); check $OPENAI_API_KEY")


@pytest.mark.parametrize(("status", "message", "expected"), [
    (403, "Project does not have access to model", ("refused the request (HTTP 403: Project does not have access to "
     f"model); check that the key in $OPENAI_API_KEY may use model '{MODEL}'")),
    (404, f"The model `{MODEL}` does not exist", (f"does not know model '{MODEL}' (HTTP 404: The model `{MODEL}` does "
     "not exist); check the model name and the base URL")),
    (400, "maximum context length is 8192 tokens", ("refused the request (HTTP 400: maximum context length is 8192 "
     f"tokens); check the model name '{MODEL}' and the request")),
])
def test_refusals_say_what_to_check(server: LlmServer, status: int, message: str, expected: str) -> None:
    server.script(openai_error(status, message))
    assert _failure(lambda: _openai(server).generate(_request())) == (
        f"OpenAI-compatible server at {server.url}/v1 {expected}")
    assert len(server.requests) == 1


def test_gives_up_after_repeated_500(server: LlmServer) -> None:
    server.script(*[openai_error(500, "The server had an error")] * 3)
    assert _failure(lambda: _openai(server, max_retries=2).generate(_request())) == (
        f"OpenAI-compatible server at {server.url}/v1 failed (HTTP 500: The server had an error) after 2 retries; "
        "retry later")
    assert len(server.requests) == 3


def test_timeout(server: LlmServer) -> None:
    server.script(openai_completion("late", delay=1.0))
    assert _failure(lambda: _openai(server, timeout=0.2, max_retries=0).generate(_request())) == (
        f"OpenAI-compatible server at {server.url}/v1 did not answer in time; retry later or raise the generation "
        "timeout")


@pytest.mark.parametrize(("answer", "why"), [
    (Respond(raw=b'{"id": "chatcmpl-1", "choices": ['), "malformed JSON: Expecting value at character 33"),
    (Respond(body={"detail": "Not Found"}), "no choices[0].message in the completion"),
])
def test_unreadable_replies(server: LlmServer, answer: Respond, why: str) -> None:
    server.script(answer)
    assert _failure(lambda: _openai(server).generate(_request())) == (
        f"OpenAI-compatible server at {server.url}/v1 sent a reply that could not be read ({why}); check that the "
        "base URL points at the right API, or retry")


def test_stream_that_stops_without_finishing_is_an_error(server: LlmServer) -> None:
    server.script(openai_stream(["The air filter ", "is replaced"], finish_reason=None))
    pieces: list[str | Reply] = []

    def consume() -> None:
        pieces.extend(_openai(server).stream(_request()))

    assert _failure(consume) == f"the reply stream from OpenAI-compatible server at {server.url}/v1 ended before it " \
                                "finished; retry"
    assert pieces == ["The air filter ", "is replaced"]


def test_error_event_inside_a_stream(server: LlmServer) -> None:
    server.script(Stream(('data: {"error": {"message": "model crashed", "type": "server_error"}}\n\n',)))
    assert _failure(lambda: _streamed(_openai(server), _request())) == (
        f"OpenAI-compatible server at {server.url}/v1 reported an error (model crashed); retry")


def test_the_key_stays_out_of_debug_logs(server: LlmServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(openai_error(429, "slow down"), openai_completion("Every six months [1]."))
    _openai(server).generate(_request())
    assert "chat/completions" in caplog.text and KEY not in caplog.text


def test_stream_whose_connection_breaks_is_an_error(server: LlmServer) -> None:
    server.script(openai_stream(["The air filter ", "is replaced every six months."], cut_after=2))
    message = _failure(lambda: _streamed(_openai(server), _request()))
    assert re.fullmatch(rf"the connection to OpenAI-compatible server at {re.escape(server.url)}/v1 broke off "
                        r"\(RemoteProtocolError: .+\); retry", message), message


def test_connection_refused_names_the_url() -> None:
    url = closed_port_url()
    generator = OpenAIGenerator.load(MODEL, base_url=url, timeout=1.0, max_retries=0, environ={})
    message = _failure(lambda: generator.generate(_request()))
    assert re.fullmatch(rf"could not reach OpenAI-compatible server at {re.escape(url)} \(ConnectError: .+\); start "
                        "the server or fix the base URL, and check the network and proxy settings", message), message


def test_base_url_without_a_key_uses_a_placeholder(server: LlmServer) -> None:
    server.script(openai_completion("Every six months [1]."))
    generator = OpenAIGenerator.load("llama3.2", base_url=f"{server.url}/v1", environ={})
    assert generator.generate(_request()).text == "Every six months [1]."
    assert server.requests[0].headers["authorization"] == "Bearer no-key"
    assert server.requests[0].body["model"] == "llama3.2"


def test_needs_a_key_or_a_base_url() -> None:
    with pytest.raises(ConfigError) as error:
        OpenAIGenerator.load(environ={"OPENAI_API_KEY": " "})
    assert str(error.value) == ("set OPENAI_API_KEY to use the OpenAI generator (or configure a base URL for a local "
                                "OpenAI-compatible server), or choose another generator")


def test_load_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match=r"^timeout must be > 0 and max_retries >= 0, got 0 and 3$"):
        OpenAIGenerator.load(timeout=0, environ={"OPENAI_API_KEY": KEY})


def _sdk_errors() -> list[BaseException]:
    import httpx2
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    body = {"error": {"message": "x"}}
    statuses: list[BaseException] = [
        cls("x", response=httpx2.Response(status, request=request), body=body) for cls, status in (
            (openai.BadRequestError, 400), (openai.AuthenticationError, 401), (openai.PermissionDeniedError, 403),
            (openai.NotFoundError, 404), (openai.ConflictError, 409), (openai.UnprocessableEntityError, 422),
            (openai.RateLimitError, 429), (openai.InternalServerError, 500), (openai.APIStatusError, 418))]
    return [*statuses, openai.APITimeoutError(request), openai.APIConnectionError(request=request),
            openai.APIResponseValidationError(httpx2.Response(200, request=request), "not a completion"),
            openai.APIError("An error occurred during streaming", request, body=None),
            json.JSONDecodeError("Expecting value", "{", 1)]


def test_mapping_covers_the_sdk_errors() -> None:
    import openai

    server = Server("OpenAI-compatible server at http://127.0.0.1:9/v1", "OPENAI_API_KEY", MODEL, 2)
    for exc in _sdk_errors():
        with pytest.raises(GenerationError) as error, _openai_errors(server):
            raise exc
        # Status errors are not chained (the SDK's text may quote the key); transport errors are.
        assert error.value.__cause__ is (None if isinstance(exc, openai.APIStatusError) or type(exc) is openai.APIError else exc)
