"""Policy plugins: what each one is, where it runs and which settings it accepts.

Admin validates policies with :func:`validate_policy`; the proxy looks plugins up with
:func:`resolve_plugin` and reads the normalized settings. Aliases from the original
README (``ratelimit``, ``tokenratelimit``, ``requestsize``, ``semanticcache``) resolve to
their plugin; a policy keeps the slug the user sent.
"""

from trustgate_core.plugins.base import (
    CATEGORIES,
    MODES,
    PROTOCOLS,
    STAGES,
    Category,
    Mode,
    PluginSettings,
    PluginSpec,
    Protocol,
    Stage,
    ValidatedPolicy,
    glob_match,
    parse_duration,
)
from trustgate_core.plugins.registry import (
    PLUGINS,
    all_plugins,
    policies_catalog,
    resolve_plugin,
    validate_policy,
)

__all__ = [
    "CATEGORIES",
    "MODES",
    "PLUGINS",
    "PROTOCOLS",
    "STAGES",
    "Category",
    "Mode",
    "PluginSettings",
    "PluginSpec",
    "Protocol",
    "Stage",
    "ValidatedPolicy",
    "all_plugins",
    "glob_match",
    "parse_duration",
    "policies_catalog",
    "resolve_plugin",
    "validate_policy",
]
