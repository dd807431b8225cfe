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
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    StandardDiffPolicy,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.constants import ROOT_EXEMPT_STRICT_COMPARISON

# --- form filling, annotations, structure tree (issue 12 items 4, 5, 7c) ---
from signing.verify.diff.annotations import AnnotationAdditionRule, NamesAppearanceRule
from signing.verify.diff.equality import EquivalentOverrideRule
from signing.verify.diff.forms import (
    FieldValueRule,
    GatewayFormUpdatingRule,
    SignedFieldAppearanceRule,
)
from signing.verify.diff.resources import DefaultResourcesRule
from signing.verify.diff.structure import StructTreeAdditionRule

# --- end form filling imports ---

__all__ = ["GATEWAY_DIFF_POLICY", "GatewayDiffPolicy", "build_policy"]


class GatewayDiffPolicy(StandardDiffPolicy):
    """:class:`~pyhanko.sign.diff_analysis.StandardDiffPolicy` with the gateway's rules."""


def build_policy() -> GatewayDiffPolicy:
    """The policy the verifier applies to every signature and document timestamp."""
    lta = ModificationLevel.LTA_UPDATES
    return GatewayDiffPolicy(
        global_rules=[
            # /Names is judged by NamesAppearanceRule (only /AP additions)
            CatalogModificationRule(ROOT_EXEMPT_STRICT_COMPARISON | {"/Names"}),
            DocInfoRule().as_qualified(lta),
            XrefStreamRule().as_qualified(lta),
            ObjectStreamRule().as_qualified(lta),
            DSSCompareRule().as_qualified(lta),
            MetadataUpdateRule().as_qualified(lta),
            # --- form filling, annotations, structure tree (issue 12 items 4, 5, 7c) ---
            EquivalentOverrideRule().as_qualified(lta),
            DefaultResourcesRule(),
            StructTreeAdditionRule(),
            AnnotationAdditionRule(),
            NamesAppearanceRule(),
        ],
        form_rule=GatewayFormUpdatingRule(field_rules=[
            SigFieldCreationRule(),
            SignedFieldAppearanceRule(),
            FieldValueRule(),
        ]),
    )


GATEWAY_DIFF_POLICY = build_policy()
