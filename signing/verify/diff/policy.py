"""The gateway's difference policy: pyHanko's standard engine with the gateway's rules.

Each rule module contributes whitelist rules (global rules, qualified at a modification level)
or form-field rules; :func:`build_policy` assembles them. Behaviour that the stock engine hard
codes (how it treats freed or undefined references, orphans, identical overrides) is changed by
overriding :class:`GatewayDiffPolicy` methods, each with the rule it implements.
"""

from __future__ import annotations

from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DocInfoRule,
    DSSCompareRule,
    FormUpdatingRule,
    GenericFieldModificationRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    XrefStreamRule,
)

__all__ = ["GATEWAY_DIFF_POLICY", "GatewayDiffPolicy", "build_policy"]


class GatewayDiffPolicy(StandardDiffPolicy):
    """:class:`~pyhanko.sign.diff_analysis.StandardDiffPolicy` with the gateway's rules."""


def build_policy() -> GatewayDiffPolicy:
    """The policy the verifier applies to every signature and document timestamp."""
    lta = ModificationLevel.LTA_UPDATES
    return GatewayDiffPolicy(
        global_rules=[
            CatalogModificationRule(),
            DocInfoRule().as_qualified(lta),
            XrefStreamRule().as_qualified(lta),
            ObjectStreamRule().as_qualified(lta),
            DSSCompareRule().as_qualified(lta),
            MetadataUpdateRule().as_qualified(lta),
        ],
        form_rule=FormUpdatingRule(field_rules=[
            SigFieldCreationRule(),
            SigFieldModificationRule(),
            GenericFieldModificationRule(),
        ]),
    )


GATEWAY_DIFF_POLICY = build_policy()
