"""The gateway's difference policy: pyHanko's standard engine with the gateway's rules.

Each rule module contributes whitelist rules (global rules, qualified at a modification level)
or form-field rules; :func:`build_policy` assembles them. Behaviour that the stock engine hard
codes (how it treats freed or undefined references, orphans, identical overrides) is changed by
overriding :class:`GatewayDiffPolicy` methods, each with the rule it implements.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DiffResult,
    DocInfoRule,
    FormUpdate,
    FormUpdatingRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    QualifiedWhitelistRule,
    ReferenceUpdate,
    SigFieldCreationRule,
    StandardDiffPolicy,
    SuspiciousModification,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.constants import ROOT_EXEMPT_STRICT_COMPARISON
from pyhanko.sign.fields import FieldMDPSpec, MDPPerm

from signing.verify.diff.annotations import AnnotationAdditionRule, NamesAppearanceRule
from signing.verify.diff.equality import EquivalentOverrideRule
from signing.verify.diff.forms import (
    FieldValueRule,
    GatewayFormUpdatingRule,
    SignedFieldAppearanceRule,
)
from signing.verify.diff.ltv import LtvUpdateRule
from signing.verify.diff.resources import DefaultResourcesRule
from signing.verify.diff.structtree import StructTreeAdditionRule
from signing.verify.diff.structure import (
    NOTES,
    OrphanRule,
    TolerantResolver,
    forward_refs,
    note,
    tolerant_resolver,
)

__all__ = ["GATEWAY_DIFF_POLICY", "GatewayDiffPolicy", "GatewayDiffResult", "build_policy"]


@dataclass(frozen=True)
class GatewayDiffResult(DiffResult):
    """:class:`DiffResult` with what the analysis tolerated past stock pyHanko, as
    ``(code, message)`` pairs the verifier reports as the signature's warnings."""

    tolerated: tuple[tuple[str, str], ...] = ()


class GatewayDiffPolicy(StandardDiffPolicy):
    """:class:`~pyhanko.sign.diff_analysis.StandardDiffPolicy` with the gateway's rules.

    Overrides:

    * :meth:`review_file` reads every revision it compares through
      :func:`~signing.verify.diff.structure.tolerant_resolver`: references to objects a
      revision does not define are null (ISO 32000-2 §7.3.10), not a strict-read error, and
      are reported (``UNDEFINED_REFERENCE_NULL``).
    * orphans: pyHanko's ``_find_orphans`` assumes no forward references; build the policy
      with ``ignore_orphaned_objects=False`` and
      :class:`~signing.verify.diff.structure.OrphanRule` instead (:func:`build_policy`).
    * :meth:`apply`: an object the previous revision's document referred to before defining
      it (:func:`~signing.verify.diff.structure.forward_refs`, ISO 32000-2 §7.3.10) is drawn,
      shown or used wherever that reference sits, so no rule's *blanket* approval of the new
      object (a new appearance stream, an equal copy, a new font) clears it: only approvals of
      each path the old revision reached it by (pyHanko's multi-usage table) do
      (warning-free refusal: the places stay unexplained).
    """

    def apply(self, old: HistoricalResolver, new: HistoricalResolver,
              field_mdp_spec: FieldMDPSpec | None = None, doc_mdp: MDPPerm | None = None,
              ) -> DiffResult:
        ahead = forward_refs(old, new)
        if not ahead:
            return super().apply(old, new, field_mdp_spec=field_mdp_spec, doc_mdp=doc_mdp)
        refs = sorted((r.idnum, r.generation) for r in ahead)[:10]
        note("FORWARD_REFERENCE_DEFINED",
             f"revision {new.revision} defines objects revision {old.revision} referred to "
             f"while undefined: {', '.join(f'{n} {g} R' for n, g in refs)} "
             "(ISO 32000-2 §7.3.10); accepted only where each reference was explained")
        guarded = copy.copy(self)  # the shared policy instance stays untouched
        guarded.global_rules = [_PathApprovalsOnly(rule, ahead) for rule in self.global_rules]
        if self.form_rule is not None:
            guarded.form_rule = _FormPathApprovalsOnly(self.form_rule, ahead)
        return StandardDiffPolicy.apply(guarded, old, new, field_mdp_spec=field_mdp_spec,
                                        doc_mdp=doc_mdp)

    def review_file(
        self,
        reader: PdfFileReader,
        base_revision: int | HistoricalResolver,
        field_mdp_spec: FieldMDPSpec | None = None,
        doc_mdp: MDPPerm | None = None,
    ) -> DiffResult | SuspiciousModification:
        if isinstance(base_revision, int):
            base = base_revision
        else:
            base = base_revision.revision
            if not isinstance(base_revision, TolerantResolver):
                base_revision = tolerant_resolver(reader, base)
        resolvers = [tolerant_resolver(reader, rev)
                     for rev in range(base, reader.xrefs.total_revisions)]
        notes: list[tuple[str, str]] = []
        token = NOTES.set(notes)
        try:
            result = super().review_file(reader, base_revision, field_mdp_spec=field_mdp_spec,
                                         doc_mdp=doc_mdp)
        finally:
            NOTES.reset(token)
        nulled = sorted({(r.idnum, r.generation) for res in resolvers for r in res.nulled})
        if nulled:
            refs = ", ".join(f"{n} {g} R" for n, g in nulled[:10])
            notes.append(("UNDEFINED_REFERENCE_NULL",
                          f"references to objects undefined in their revision read as null "
                          f"(ISO 32000-2 §7.3.10): {refs}"))
        if isinstance(result, DiffResult) and notes:
            return GatewayDiffResult(result.modification_level, result.changed_form_fields,
                                     tolerated=tuple(notes))
        return result


def _path_approval(update: ReferenceUpdate, ahead: frozenset[generic.Reference]) -> bool:
    return update.context_checked is not None or update.updated_ref not in ahead


class _PathApprovalsOnly(QualifiedWhitelistRule):
    """A rule whose blanket approvals of forward-referenced objects are dropped."""

    def __init__(self, rule: QualifiedWhitelistRule, ahead: frozenset[generic.Reference]):
        self.rule, self.ahead = rule, ahead

    def apply_qualified(self, old: HistoricalResolver, new: HistoricalResolver,
                        ) -> Iterable[tuple[ModificationLevel, ReferenceUpdate]]:
        return ((level, upd) for level, upd in self.rule.apply_qualified(old, new)
                if _path_approval(upd, self.ahead))


class _FormPathApprovalsOnly(FormUpdatingRule):
    """The form rule with blanket approvals of forward-referenced objects dropped."""

    def __init__(self, rule: FormUpdatingRule, ahead: frozenset[generic.Reference]):
        self.rule, self.ahead = rule, ahead

    def apply(self, old: HistoricalResolver, new: HistoricalResolver,
              ) -> Iterable[tuple[ModificationLevel, FormUpdate]]:
        return ((level, upd) for level, upd in self.rule.apply(old, new)
                if _path_approval(upd, self.ahead))


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
            LtvUpdateRule().as_qualified(lta),
            MetadataUpdateRule().as_qualified(lta),
            OrphanRule().as_qualified(lta),
            # --- form filling, annotations, structure tree (issue 12 items 4, 5, 7c) ---
            EquivalentOverrideRule().as_qualified(lta),
            DefaultResourcesRule(),
            StructTreeAdditionRule(),
            AnnotationAdditionRule(),
            NamesAppearanceRule(),
        ],
        form_rule=GatewayFormUpdatingRule(field_rules=[
            # page bindings of new signature widgets: AnnotationAdditionRule (with comments)
            SigFieldCreationRule(approve_widget_bindings=False),
            SignedFieldAppearanceRule(),
            FieldValueRule(),
        ]),
        ignore_orphaned_objects=False,
    )


GATEWAY_DIFF_POLICY = build_policy()
