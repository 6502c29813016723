"""HTTP/1.1 header blocks parsed without the email parser, on InvokeEndpoint's hot path.

``http.client.parse_headers``, which ``http.server`` runs on every request and
``http.client`` on every response, hands the header block to ``email.parser``'s FeedParser:
the costliest step of an InvokeEndpoint in local_aws (three times per call: the client's
request, the model server's view of it, the model server's answer). :func:`parse_headers`
builds the same ``HTTPMessage`` directly when every line is a plain ``Name: value``, and
hands anything else (folded lines, a bare CR, a line that is no header) to the email parser
as before, so its result is always the one ``http.client`` gives.
"""

from __future__ import annotations

import http.client
import re
from email.policy import Compat32
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import IO

# http.client's limits (its _MAXLINE and _MAXHEADERS), with the errors it raises past them
MAX_LINE = 65536
MAX_HEADERS = 100
# A header the email parser would store as (name, value with leading blanks removed): a name
# of the characters its headerRE allows, no CR but the line's end.
_PLAIN = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*)\r?\n")
_END = (b"\r\n", b"\n", b"")


def read_header_lines(fp: IO[bytes]) -> list[bytes]:
    """The header block's lines, the empty line that ends it included."""
    lines = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in _END:
            return lines


class _Latin1Policy(Compat32):
    """compat32 for values decoded from latin-1 here: such a str has no surrogates, so the
    sanitising compat32 does on every read of a header (its only work) always returns it
    as it is."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_LATIN1 = _Latin1Policy()


def parse_headers(fp: IO[bytes]) -> http.client.HTTPMessage:
    """``http.client.parse_headers(fp)``, the same message, faster for plain header lines."""
    lines = read_header_lines(fp)
    message = http.client.HTTPMessage(policy=_LATIN1)
    for line in lines[:-1]:
        match = _PLAIN.fullmatch(line)
        if match is None:
            return _email_parse(lines)
        message[match[1].decode("ascii")] = match[2].decode("iso-8859-1")
    if lines[-1] == b"":  # the block ended at EOF: left to the email parser's own reading
        return _email_parse(lines)
    return message


def _email_parse(lines: list[bytes]) -> http.client.HTTPMessage:
    import email.parser

    text = b"".join(lines).decode("iso-8859-1")
    message = email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
    assert isinstance(message, http.client.HTTPMessage)
    return message


class FastHeadersHandler(BaseHTTPRequestHandler):
    """A request handler whose request headers come from :func:`parse_headers`.

    A request line of the usual shape (``METHOD TARGET HTTP/1.x``) is taken here, with the
    same consequences as in ``BaseHTTPRequestHandler.parse_request`` (connection reuse,
    ``Expect: 100-continue``, 431 for oversized headers); any other goes to the standard
    library, whose errors and HTTP/0.9 handling stay as they are.
    """

    raw_requestline: bytes  # set by handle_one_request before parse_request

    def parse_request(self) -> bool:
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return super().parse_request()
        self.command, path, self.request_version = words
        self.requestline = requestline
        # as the standard library does: "//x" would read as a host to a client (gh-87389)
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.close_connection = not (
            self.request_version == "HTTP/1.1" and self.protocol_version >= "HTTP/1.1"
        )
        try:
            self.headers = parse_headers(self.rfile)  # type: ignore[arg-type]
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err)
            )
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = self.headers.get("Expect", "").lower()
        if (
            expect == "100-continue"
            and self.protocol_version >= "HTTP/1.1"
            and self.request_version >= "HTTP/1.1"
        ):
            return self.handle_expect_100()
        return True
