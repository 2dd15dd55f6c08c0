"""Sitemaps (sitemaps.org): a ``<urlset>`` lists pages, a ``<sitemapindex>`` lists further sitemaps."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True, slots=True)
class Sitemap:
    """A parsed sitemap: page URLs (``<urlset>``) or child sitemap URLs (``<sitemapindex>``)."""

    pages: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()


def parse_sitemap(data: bytes) -> Sitemap | None:
    """Return the URLs a sitemap lists, or None if ``data`` is not a sitemap."""
    # Sitemaps come from the network: no entities, no DTD fetches, no billion-laughs expansion.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    kind = etree.QName(root).localname
    locations = tuple(
        loc.text.strip() for loc in root.iterfind("{*}*/{*}loc") if loc.text is not None and loc.text.strip()
    )
    if kind == "urlset":
        return Sitemap(pages=locations)
    if kind == "sitemapindex":
        return Sitemap(sitemaps=locations)
    return None
