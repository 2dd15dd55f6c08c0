"""robots.txt (RFC 9309) through the standard library's parser: may this user agent fetch a URL?"""

from __future__ import annotations

from urllib.robotparser import RobotFileParser

# RFC 9309 2.5: crawlers must read at least the first 500 KiB of a robots.txt.
MAX_ROBOTS_BYTES = 500 * 1024
KEEP_OUT = ["User-agent: *", "Disallow: /"]


def robots_url(origin: str) -> str:
    """Return the robots.txt URL of an origin (``https://host:port``)."""
    return f"{origin}/robots.txt"


def parse_robots(status: int, body: bytes) -> RobotFileParser:
    """Return the rules a robots.txt response sets, by its HTTP status (RFC 9309 2.3.1).

    2xx: the file's rules. 4xx ("unavailable"): everything allowed. 5xx ("unreachable"): everything
    disallowed, since the site may be overloaded or the rules unreadable.
    """
    rules = RobotFileParser()
    if 200 <= status < 300:
        rules.parse(body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace").splitlines())
    else:
        rules.parse([] if 400 <= status < 500 else KEEP_OUT)
    return rules
