"""Calling moto's WSGI app: to completion, and with a journaled request rebuilt for replay."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from local_aws.journal.inspection import _PRESERVED_NAMES_KEY, _rewrite_copy_source, _rewrite_ids
from local_aws.journal.records import JournalError, _Body, _Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def _call(app: WSGIApplication, environ: WSGIEnvironment) -> _Response:
    """Run ``app`` to completion; moto's responses are small unless they are reads."""
    captured: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return written.append

    result = app(environ, start_response)
    try:
        chunks = list(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not captured:
        raise JournalError("the app returned without starting a response")
    return _Response(captured[0], list(captured[1]), b"".join(written + chunks))


def _buffered(response: _Response, start_response: StartResponse) -> list[bytes]:
    start_response(response.status, response.headers)
    return [response.body]


def _replay_environ(meta: dict[str, Any], body: _Body, to_live: dict[str, str]) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder

    headers: dict[str, str] = dict(meta["headers"])
    host = headers.get("HTTP_HOST", "localhost")
    query = _rewrite_ids(meta["query"], to_live) if to_live else meta["query"]
    if to_live and "HTTP_X_AMZ_COPY_SOURCE" in headers:
        headers["HTTP_X_AMZ_COPY_SOURCE"] = _rewrite_copy_source(
            headers["HTTP_X_AMZ_COPY_SOURCE"], to_live
        )
    environ = EnvironBuilder(
        method=meta["method"],
        base_url=f"http://{host}",
        input_stream=body.stream,
        content_length=body.size,
    ).get_environ()
    environ.pop("CONTENT_TYPE", None)
    environ.update(headers)
    environ["PATH_INFO"] = meta["path"]
    environ["QUERY_STRING"] = query
    raw_path = meta.get("raw_path")
    if raw_path:
        environ["RAW_URI"] = environ["REQUEST_URI"] = raw_path + (f"?{query}" if query else "")
    environ["CONTENT_LENGTH"] = str(body.size)
    environ[_PRESERVED_NAMES_KEY] = dict(meta.get("preserved", {}))
    return environ


@contextmanager
def fast_moto_routing() -> Iterator[None]:
    """Cache the list of moto's modules, which moto's server rebuilds from the file system
    (a listdir and ~170 stats) for every request it routes: over a third of replay time."""
    import moto.backends as backends

    real = backends.list_of_moto_modules
    cached = tuple(real())
    backends.list_of_moto_modules = lambda: cached
    try:
        yield
    finally:
        backends.list_of_moto_modules = real
