"""CohereGenerator against a local server speaking Cohere's v2 chat wire format (never the internet)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from rag.answer.dialogue import (
    GenerationRequest,
    Generator,
    Message,
    Passage,
    Reply,
    Role,
    SpanCitation,
    ToolCall,
    Usage,
)
from rag.answer.generators.cohere import CohereGenerator, _cohere_errors
from rag.answer.generators.status import Server
from rag.errors import ConfigError, GenerationError
from rag.types import Chunk, Hit
from tests.llm_server import (
    LlmServer,
    Respond,
    cohere_chat,
    cohere_citation,
    cohere_error,
    cohere_stream,
    serve,
)

KEY = "co-test-3d8e51aa-not-a-real-key"
MODEL = "command-a-03-2025"
QUESTION = "How often is the air filter replaced?"
SYSTEM = Message(Role.SYSTEM, "Answer only from the documents.")
USER = Message(Role.USER, QUESTION)
ANSWER = "The air filter is replaced every six months. The pump needs no service."


def _passage(number: int, text: str, language: str, page: int | None = None, heading: tuple[str, ...] = ()
             ) -> Passage:
    chunk = Chunk(f"c{number}", f"file:///manual-{language}.pdf", 0, text, 0, len(text), language, page, heading)
    return Passage(number, Hit(chunk, f"Manual ({language})", 0.5))


PASSAGES = (_passage(2, "Der Luftfilter wird alle sechs Monate gewechselt.", "de", 3, ("Wartung", "Filter")),
            _passage(5, "ポンプは保守不要です。", "ja"))
DOCUMENTS = [
    {"id": "2", "data": {"title": "Manual (de)", "snippet": "Der Luftfilter wird alle sechs Monate gewechselt.",
                         "language": "de", "location": "p. 3 › Wartung › Filter"}},
    {"id": "5", "data": {"title": "Manual (ja)", "snippet": "ポンプは保守不要です。", "language": "ja"}},
]
FILTER, PUMP = "air filter is replaced every six months", "The pump needs no service"
FILTER_AT, PUMP_AT = ANSWER.index(FILTER), ANSWER.index(PUMP)
# A source that is not one of our documents (a tool's, say) is dropped; a repeated number is kept once.
CITATIONS = [cohere_citation(FILTER_AT, FILTER_AT + len(FILTER), FILTER, "2"),
             cohere_citation(PUMP_AT, PUMP_AT + len(PUMP), PUMP, "5", "2", "web-search-0", "5")]
SPANS = (SpanCitation(4, 43, (2,)), SpanCitation(45, 70, (5, 2)))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LlmServer]:
    yield from serve(monkeypatch)


def _cohere(server: LlmServer, timeout: float = 2.0, max_retries: int = 2) -> CohereGenerator:
    return CohereGenerator.load(base_url=server.url, timeout=timeout, max_retries=max_retries,
                                environ={"COHERE_API_KEY": KEY})


def _request(*messages: Message) -> GenerationRequest:
    return GenerationRequest(messages or (SYSTEM, USER), PASSAGES, QUESTION, "en", max_tokens=300, temperature=0.1)


def _failure(call: Callable[[], object]) -> str:
    """The GenerationError ``call`` raises, as text, checked not to contain the key."""
    with pytest.raises(GenerationError) as error:
        call()
    assert KEY not in str(error.value) and KEY not in repr(error.value)
    return str(error.value)


def test_documents_carry_our_numbers_and_citations_come_back_as_spans(server: LlmServer) -> None:
    server.script(cohere_chat(ANSWER, CITATIONS, usage=(30, 8)))
    generator: Generator = _cohere(server)
    reply = generator.generate(_request())
    assert reply == Reply(ANSWER, citations=SPANS, usage=Usage(130, 8), model=MODEL, finish_reason="stop",
                          seconds=reply.seconds)
    assert (ANSWER[4:43], ANSWER[45:70]) == (FILTER, PUMP)
    (sent,) = server.requests
    assert (sent.path, sent.headers["authorization"]) == ("/v2/chat", f"Bearer {KEY}")
    assert sent.body == {"model": MODEL, "messages": [{"role": "system", "content": SYSTEM.content},
                                                      {"role": "user", "content": QUESTION}],
                         "documents": DOCUMENTS, "temperature": 0.1, "max_tokens": 300, "stream": False}
    assert (generator.name, generator.supports_tools, generator.is_llm, generator.native_documents) == (
        f"cohere:{MODEL}", False, True, True)
    assert KEY not in repr(generator)


def test_stream_yields_deltas_collects_citations_and_ends_with_the_reply(server: LlmServer) -> None:
    deltas = ["The air filter is replaced ", "every six months. ", "The pump needs no service."]
    server.script(cohere_stream(deltas, CITATIONS, usage=(30, 8)))
    pieces = list(_cohere(server).stream(_request()))
    reply = pieces[-1]
    assert isinstance(reply, Reply)
    assert pieces == [*deltas, Reply(ANSWER, citations=SPANS, usage=Usage(130, 8), model=MODEL,
                                     finish_reason="stop", seconds=reply.seconds)]
    assert server.requests[0].body["stream"] is True


def test_max_tokens_reads_as_length(server: LlmServer) -> None:
    server.script(cohere_chat("The air filter", finish_reason="MAX_TOKENS"),
                  cohere_stream(["The air filter"], finish_reason="MAX_TOKENS"))
    generator = _cohere(server)
    whole = generator.generate(_request())
    streamed = list(generator.stream(_request()))[-1]
    assert isinstance(streamed, Reply)
    assert (whole.finish_reason, streamed.finish_reason, streamed.text) == ("length", "length", "The air filter")


def test_retries_after_429_then_succeeds(server: LlmServer) -> None:
    server.script(cohere_error(429, "You are using a Trial key"), cohere_chat(ANSWER))
    assert _cohere(server).generate(_request()).text == ANSWER
    assert len(server.requests) == 2


def test_stream_start_is_retried_after_429_and_503(server: LlmServer) -> None:
    server.script(cohere_error(429, "slow down"), cohere_error(503, "overloaded"), cohere_stream([ANSWER]))
    assert next(iter(_cohere(server).stream(_request()))) == ANSWER
    assert len(server.requests) == 3


def test_stream_gives_up_after_its_retries(server: LlmServer) -> None:
    server.script(*[cohere_error(500, "internal server error")] * 2)
    assert _failure(lambda: list(_cohere(server, max_retries=1).stream(_request()))) == (
        f"Cohere at {server.url} failed (HTTP 500: internal server error) after 1 retries; retry later")
    assert len(server.requests) == 2


def test_unauthorized_names_the_variable_not_the_key(server: LlmServer) -> None:
    server.script(cohere_error(401, f"invalid api token {KEY}"))
    assert _failure(lambda: _cohere(server).generate(_request())) == (
        f"Cohere at {server.url} rejected the API key (HTTP 401); check $COHERE_API_KEY")


def test_stream_unauthorized_is_not_retried(server: LlmServer) -> None:
    server.script(cohere_error(401, "invalid api token"))
    assert _failure(lambda: list(_cohere(server).stream(_request()))) == (
        f"Cohere at {server.url} rejected the API key (HTTP 401); check $COHERE_API_KEY")
    assert len(server.requests) == 1


def test_stream_that_stops_without_its_end_is_an_error(server: LlmServer) -> None:
    server.script(cohere_stream(["The air filter ", "is replaced"], finish_reason=None))
    assert _failure(lambda: list(_cohere(server).stream(_request()))) == (
        f"the reply stream from Cohere at {server.url} ended before it finished; retry")


def test_stream_whose_connection_breaks_is_an_error(server: LlmServer) -> None:
    server.script(cohere_stream(["The air filter ", "is replaced"], cut_after=3))
    message = _failure(lambda: list(_cohere(server).stream(_request())))
    assert re.fullmatch(rf"the connection to Cohere at {re.escape(server.url)} broke off \(RemoteProtocolError: .+\); "
                        "retry", message), message


def test_an_error_at_the_message_end_is_an_error(server: LlmServer) -> None:
    server.script(cohere_stream(["The air"], finish_reason="ERROR", error="model overloaded"))
    assert _failure(lambda: list(_cohere(server).stream(_request()))) == (
        f"Cohere at {server.url} stopped generating (ERROR: model overloaded); retry")


def test_a_citation_outside_the_reply_is_an_error(server: LlmServer) -> None:
    server.script(cohere_chat("Short.", [cohere_citation(0, 40, "Short.", "2")]))
    assert _failure(lambda: _cohere(server).generate(_request())) == (
        f"Cohere at {server.url} sent a reply that could not be read (a citation spans 0..40 of a 6-character "
        "reply); check that the base URL points at the right API, or retry")


def test_timeout(server: LlmServer) -> None:
    server.script(Respond(body={}, delay=1.0))
    assert _failure(lambda: _cohere(server, timeout=0.2).generate(_request())) == (
        f"Cohere at {server.url} did not answer in time; retry later or raise the generation timeout")


def test_tool_turns_are_refused() -> None:
    generator = CohereGenerator(client=None)
    turn = Message(Role.ASSISTANT, "", (ToolCall("call_1", "search"),))
    with pytest.raises(ValueError, match=r"^the Cohere generator takes no tool calls or tool results"):
        generator.generate(_request(SYSTEM, USER, turn))


def test_needs_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        CohereGenerator.load(base_url="http://127.0.0.1:9", environ={})
    assert str(error.value) == "set COHERE_API_KEY to use the Cohere generator, or choose another generator"


def _sdk_errors() -> list[BaseException]:
    import cohere
    import httpx

    names = ("BadRequestError", "UnauthorizedError", "ForbiddenError", "NotFoundError", "UnprocessableEntityError",
             "TooManyRequestsError", "InvalidTokenError", "ClientClosedRequestError", "InternalServerError",
             "NotImplementedError", "ServiceUnavailableError", "GatewayTimeoutError")
    errors: list[BaseException] = [getattr(cohere, name)(body={"message": "x"}) for name in names]
    request = httpx.Request("POST", "http://127.0.0.1:9/v2/chat")
    return [*errors, cohere.core.ApiError(status_code=200, body="not json"),
            cohere.core.parse_error.ParsingError(status_code=200, body={}),
            httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request),
            httpx.RemoteProtocolError("peer closed connection", request=request)]


def test_mapping_covers_the_sdk_errors() -> None:
    from cohere.core.api_error import ApiError
    from cohere.core.parse_error import ParsingError

    server = Server("Cohere at http://127.0.0.1:9", "COHERE_API_KEY", MODEL, 2)
    for exc in _sdk_errors():
        with pytest.raises(GenerationError) as error, _cohere_errors(server):
            raise exc
        # Status errors are not chained (the SDK's text may quote the key); transport errors are.
        assert error.value.__cause__ is (None if isinstance(exc, (ApiError, ParsingError)) else exc)
