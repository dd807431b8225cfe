"""Difference analysis past stock pyHanko: which changes after a signature are allowed.

A signature covers the revision it signed (ISO 32000-2 §12.8.1); what later incremental updates
may do is a policy. pyHanko's :class:`~pyhanko.sign.diff_analysis.StandardDiffPolicy` whitelists
changes object by object; :class:`GatewayDiffPolicy` keeps that engine and its rules and adds the
ones real producers need (each module states the rule it implements and where the standard says
so):

* :mod:`.policy` - the policy itself and the one instance the verifier uses;
* :mod:`.ltv` - DSS/VRI updates are LTA_UPDATES (ISO 32000-2 §12.8.4.3-4, EN 319 142-1 §5.4);
* :mod:`.structure` - undefined references are null (ISO 32000-2 §7.3.10), objects only vendor
  trailer keys reach are no content (§7.5.5), orphans without assuming no forward references;
* :mod:`.linearized` - a linearized file's two cross-reference sections are one revision
  (ISO 32000-2 Annex F; applied to the reader by the engine before any signature is read);
* :mod:`.forms` - form filling: field names (§12.7.4.2), values and their appearances
  (§12.7.4.3, §12.7.5.4), widget kids; an appearance changed without its value
  is the shadow attack "replace via overlay", refused.
* :mod:`.resources` - fonts added to the form's ``/DR``, obsolete ``/Name`` dropped.
* :mod:`.annotations` - comments added after signing (level ANNOTATIONS) and ``/Names /AP``.
* :mod:`.structtree` - structure tree entries for new widget annotations (§14.7.5.4).
* :mod:`.equality` - an object re-written with an equal value, under any number, is no change.
"""

from signing.verify.diff.policy import GATEWAY_DIFF_POLICY, GatewayDiffPolicy, build_policy

__all__ = ["GATEWAY_DIFF_POLICY", "GatewayDiffPolicy", "build_policy"]
