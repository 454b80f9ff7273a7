"""Where the signed session id travels: the cookie, or a request header for
API clients (what Spring Session calls an ``HttpSessionIdResolver``).

The interface picks one transport per request, in ``open_session``, and asks
it to read the id, send it and expire it, so no other code branches on how
the id came.
"""

from __future__ import annotations

import abc
import collections.abc as cabc
import typing as t

from .signing import cookie_value
from .signing import unsign

if t.TYPE_CHECKING:
    from werkzeug.sansio.request import Request as SansIORequest
    from werkzeug.wrappers import Request
    from werkzeug.wrappers import Response

    from .cookie import Cookie
    from .options import Options
    from .signing import Secret

#: A WSGI environ.
Environ = cabc.Mapping[str, t.Any]


def forbid_caching(response: Response) -> None:
    """Add ``Cache-Control: private, no-store`` to a response, keeping the
    directives the view set (but ``public``, which would contradict them).
    """
    directives = response.cache_control
    directives.public = False
    directives.private = True
    directives.no_store = True


def add_vary(response: Response, names: tuple[str, ...]) -> None:
    """Add ``names`` to the response's ``Vary`` header, each once."""
    if "Vary" in response.headers:
        for name in names:
            response.vary.add(name)
    else:  # the common case, without parsing a header set
        response.headers["Vary"] = ", ".join(names)


class Transport(abc.ABC):
    """How the signed session id (``s:<sid>.<sig>``, see
    :mod:`~flask_connect_session.signing`) goes between client and server.

    .. versionadded:: 0.1
    """

    #: The header or cookie name.
    name: str
    #: The request headers a response with a session depends on, for ``Vary``.
    vary: tuple[str, ...]

    @abc.abstractmethod
    def raw_value(self, environ: Environ) -> str | None:
        """Return the signed id as the client sent it, or ``None``."""

    def read(self, environ: Environ, secrets: cabc.Sequence[Secret]) -> str | None:
        """Return the session id the request carries if it is validly signed
        under one of ``secrets``, else ``None`` (never an error).
        """
        raw = self.raw_value(environ)
        return unsign(raw, secrets) if raw else None

    @abc.abstractmethod
    def send(self, response: Response, value: str, cookie: Cookie) -> None:
        """Give the client the signed id ``value``.

        :param cookie: the session's cookie settings (attributes, expiry).
        """

    @abc.abstractmethod
    def expire(self, response: Response, cookie: Cookie) -> None:
        """Tell the client its session is gone."""


class CookieTransport(Transport):
    """The id in the session cookie, as express-session sends it.

    :param name: the cookie name.
    :param vary: the ``Vary`` names of its responses.
    """

    def __init__(self, name: str, vary: tuple[str, ...] = ("Cookie",)) -> None:
        self.name = name
        self.vary = vary

    def raw_value(self, environ: Environ) -> str | None:
        """The first cookie of the configured name counts."""
        return cookie_value(environ.get("HTTP_COOKIE", ""), self.name)

    def send(self, response: Response, value: str, cookie: Cookie) -> None:
        """Set the cookie."""
        response.headers.add("Set-Cookie", cookie.header(self.name, value))

    def expire(self, response: Response, cookie: Cookie) -> None:
        """Delete the cookie, with the attributes it was set with."""
        response.delete_cookie(self.name, **cookie.attributes())


class HeaderTransport(Transport):
    """The id in a request and response header, for API clients: the
    response carries the signed id when a cookie would have been set, and an
    empty value when the session is gone. The cookie is never read or set.

    :param name: the header name, e.g. ``X-Session-Id``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.vary = (name,)
        #: Where WSGI puts the header.
        self.environ_key = "HTTP_" + name.upper().replace("-", "_")

    def carried_by(self, environ: Environ) -> bool:
        """Whether the request has the header, with any value, even empty."""
        return self.environ_key in environ

    def raw_value(self, environ: Environ) -> str | None:
        return t.cast("str | None", environ.get(self.environ_key))

    def hide_cookies(
        self, request: SansIORequest, environ: cabc.MutableMapping[str, t.Any]
    ) -> None:
        """Make the request's cookies invisible to the app: a cookie-based
        login (Flask-Login's remember-me cookie, which the browser attaches
        by itself) must never log a header session in.

        :param environ: the request's WSGI environ (or, for Quart, its
            headers seen as one).
        """
        environ.pop("HTTP_COOKIE", None)
        request.__dict__.pop("cookies", None)  # parsed already: parse again

    def send(self, response: Response, value: str, cookie: Cookie) -> None:
        """Set the response header to ``value``; no shared cache may keep
        the response.
        """
        response.headers[self.name] = value
        forbid_caching(response)

    def expire(self, response: Response, cookie: Cookie) -> None:
        """Set the response header to an empty value; no shared cache may
        keep the response.
        """
        response.headers[self.name] = ""
        forbid_caching(response)


class Transports:
    """The transports an app uses, built once from its options.

    With no header configured every request uses the cookie. With one, a
    request that carries the header uses it, and cookie responses name the
    header in ``Vary`` too: adding the header would change the response.

    :param options: the parsed configuration.
    """

    def __init__(self, options: Options) -> None:
        #: The header transport, or ``None`` when no header is configured.
        self.header = None if options.header is None else HeaderTransport(options.header)
        vary = ("Cookie",) if options.header is None else ("Cookie", options.header)
        #: The cookie transport.
        self.cookie = CookieTransport(options.key, vary)

    def choose(
        self, request: SansIORequest, environ: cabc.MutableMapping[str, t.Any] | None = None
    ) -> Transport:
        """Return the transport of a request; a header request's cookies are
        hidden from the app (see :meth:`HeaderTransport.hide_cookies`).

        :param environ: the request's WSGI environ; by default
            ``request.environ`` (Quart's driver passes its headers seen as one).
        """
        header = self.header
        if header is None:
            return self.cookie
        if environ is None:
            environ = t.cast("Request", request).environ
        if header.carried_by(environ):
            header.hide_cookies(request, environ)
            return header
        return self.cookie
