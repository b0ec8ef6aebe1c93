"""Policy plugins: what each one is, where it runs and which settings it accepts.

Admin validates policies with :func:`validate_policy`; the proxy looks plugins up with
:func:`resolve_plugin` and reads the normalized settings. Aliases from the original
README (``ratelimit``, ``tokenratelimit``, ``requestsize``, ``semanticcache``) resolve to
their plugin; a policy keeps the slug the user sent.
"""

from trustgate_core.models.policy import Mode, Stage
from trustgate_core.plugins.base import (
    CATEGORIES,
    MODES,
    PLANES,
    STAGES,
    Category,
    Plane,
    PluginSettings,
    PluginSpec,
    ValidatedPolicy,
    glob_match,
)
from trustgate_core.plugins.registry import (
    PLUGINS,
    policies_catalog,
    resolve_plugin,
    validate_policy,
)

__all__ = [
    "CATEGORIES",
    "MODES",
    "PLANES",
    "PLUGINS",
    "STAGES",
    "Category",
    "Mode",
    "Plane",
    "PluginSettings",
    "PluginSpec",
    "Stage",
    "ValidatedPolicy",
    "glob_match",
    "policies_catalog",
    "resolve_plugin",
    "validate_policy",
]
