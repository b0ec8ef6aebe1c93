"""The connect page: where a person lets an agent act for them on one MCP server, by
signing in with the consumer's API key or with the configured identity provider. Self
contained (no external assets, no script); every value is escaped."""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;"
    "color:#1f2328}h1{font-size:1.3rem}code{background:#f3f4f6;padding:0 .2rem}"
    "label{display:block;margin:1rem 0 .3rem}input[type=password]{width:100%;padding:.5rem;"
    "box-sizing:border-box}button,a.idp{display:inline-block;margin-top:1rem;padding:.5rem 1rem;"
    "border:1px solid #1f2328;background:#1f2328;color:#fff;text-decoration:none;"
    "border-radius:4px;cursor:pointer}p.error{color:#b42318}small{color:#57606a}"
)


def connect_page(
    *,
    client_name: str,
    resource: str,
    form_token: str,
    action: str,
    idp: tuple[str, str] | None,
    error: str | None = None,
) -> bytes:
    """The page; ``idp`` is (name, link) when sign-in with an IdP is offered."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>Connect {escape(client_name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Connect <em>{escape(client_name)}</em></h1>",
        f"<p>to the MCP server <code>{escape(resource)}</code>.</p>",
    ]
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    parts += [
        f'<form method="post" action="{escape(action)}">',
        f'<input type="hidden" name="form" value="{escape(form_token)}">',
        '<label for="api_key">Sign in with this MCP server\'s API key</label>',
        '<input id="api_key" name="api_key" type="password" autocomplete="off" required>',
        "<button type=submit>Connect</button></form>",
    ]
    if idp is not None:
        name, link = idp
        parts.append(
            f'<p>or</p><a class="idp" href="{escape(link)}">Sign in with {escape(name)}</a>'
        )
    parts.append(
        "<p><small>Only connect agents you trust: they will act as you on this server."
        "</small></p></body></html>"
    )
    return "".join(parts).encode()


def message_page(title: str, text: str) -> bytes:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1><p>{escape(text)}</p>"
        "</body></html>"
    ).encode()
