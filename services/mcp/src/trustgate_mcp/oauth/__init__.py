"""OAuth 2.1 for agents: the plane as a protected resource (RFC 9728) and as an
authorization server (RFC 8414 metadata, RFC 7591 registration, authorization code with
PKCE S256, JWKS), with sign-in by the consumer's API key or a configured IdP."""
