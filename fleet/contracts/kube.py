"""The Kubernetes surface of the wire: API group, version, kinds, names, finalizer.

These literals are fixed: CRD manifests, the operator and ``kubectl`` users all use them.
This module must never do I/O or import a Kubernetes client.
"""

from __future__ import annotations

from typing import Final

CRD_GROUP: Final = "fleet.nationtech.io"
CRD_VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{CRD_GROUP}/{CRD_VERSION}"
FINALIZER: Final = "fleet.nationtech.io/finalizer"

KIND_DEPLOYMENT: Final = "Deployment"
SINGULAR_DEPLOYMENT: Final = "deployment"
PLURAL_DEPLOYMENTS: Final = "deployments"
SHORT_NAME_DEPLOYMENT: Final = "fleetdep"
CRD_NAME_DEPLOYMENT: Final = f"{PLURAL_DEPLOYMENTS}.{CRD_GROUP}"

KIND_DEVICE: Final = "Device"
SINGULAR_DEVICE: Final = "device"
PLURAL_DEVICES: Final = "devices"
SHORT_NAME_DEVICE: Final = "fleetdev"
CRD_NAME_DEVICE: Final = f"{PLURAL_DEVICES}.{CRD_GROUP}"

KIND_ENROLLMENT_REQUEST: Final = "EnrollmentRequest"
SINGULAR_ENROLLMENT_REQUEST: Final = "enrollmentrequest"
PLURAL_ENROLLMENT_REQUESTS: Final = "enrollmentrequests"
SHORT_NAME_ENROLLMENT_REQUEST: Final = "fleetenroll"
CRD_NAME_ENROLLMENT_REQUEST: Final = f"{PLURAL_ENROLLMENT_REQUESTS}.{CRD_GROUP}"

KIND_BOOTSTRAP_TOKEN: Final = "BootstrapToken"
SINGULAR_BOOTSTRAP_TOKEN: Final = "bootstraptoken"
PLURAL_BOOTSTRAP_TOKENS: Final = "bootstraptokens"
SHORT_NAME_BOOTSTRAP_TOKEN: Final = "fleettoken"
CRD_NAME_BOOTSTRAP_TOKEN: Final = f"{PLURAL_BOOTSTRAP_TOKENS}.{CRD_GROUP}"
