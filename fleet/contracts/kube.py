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

KIND_DEPLOYMENT_REVISION: Final = "DeploymentRevision"
SINGULAR_DEPLOYMENT_REVISION: Final = "deploymentrevision"
PLURAL_DEPLOYMENT_REVISIONS: Final = "deploymentrevisions"
SHORT_NAME_DEPLOYMENT_REVISION: Final = "fleetrev"
CRD_NAME_DEPLOYMENT_REVISION: Final = f"{PLURAL_DEPLOYMENT_REVISIONS}.{CRD_GROUP}"
LABEL_REVISION_OF: Final = "fleet.nationtech.io/deployment"
"""On a DeploymentRevision: the name of the Deployment resource it is a revision of."""

ANNOTATION_ROLLOUT_PAUSED: Final = "fleet.nationtech.io/rollout-paused"
"""On a Deployment, ``"true"``: its rollout admits and advances nothing (``fleetctl rollout
pause``); removed, it goes on (``resume``)."""
ANNOTATION_ROLLOUT_APPROVED: Final = "fleet.nationtech.io/rollout-approved"
"""On a Deployment, ``"<revision>/<batch>"``: a person let batch ``<batch>`` (counted from
1) of revision ``<revision>`` start (``fleetctl rollout approve``)."""
