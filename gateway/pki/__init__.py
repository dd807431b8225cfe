"""The public-key infrastructure the gateway runs against: revocation data, signing keys, TSA.

* :mod:`.revocation`        the CRL cache refresher (verification works offline);
* :mod:`.keyhealth`         health of the configured signing keys (canary signatures, expiry);
* :mod:`.signing_services`  the TSA and validation services ``/v1/sign`` uses.

Named ``pki`` (not ``signing``) so that it is never mistaken for the top-level :mod:`signing`
library (the PAdES signer and verifier these modules feed) nor for the ``/v1/sign`` handlers in
:mod:`gateway.api.signing`.
"""
