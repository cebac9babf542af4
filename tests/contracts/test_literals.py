"""The wire's fixed literals: a change here breaks every deployed agent and operator."""

from __future__ import annotations

from fleet import contracts
from fleet.contracts import (
    ALL_BUCKETS,
    API_VERSION,
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    CRD_GROUP,
    CRD_NAME_DEPLOYMENT,
    CRD_NAME_DEVICE,
    CRD_VERSION,
    FINALIZER,
    KIND_DEPLOYMENT,
    KIND_DEVICE,
    PLURAL_DEPLOYMENTS,
    PLURAL_DEVICES,
    PODMAN_SCORE_TYPE,
    SHORT_NAME_DEPLOYMENT,
    SHORT_NAME_DEVICE,
    SINGULAR_DEPLOYMENT,
    SINGULAR_DEVICE,
    Phase,
)


def test_bucket_names_are_fixed() -> None:
    assert BUCKET_DESIRED_STATE == "desired-state"
    assert BUCKET_DEVICE_INFO == "device-info"
    assert BUCKET_DEVICE_STATE == "device-state"
    assert BUCKET_DEVICE_HEARTBEAT == "device-heartbeat"
    assert ALL_BUCKETS == ("desired-state", "device-info", "device-state", "device-heartbeat")


def test_kubernetes_surface_is_fixed() -> None:
    assert CRD_GROUP == "fleet.nationtech.io"
    assert CRD_VERSION == "v1alpha1"
    assert API_VERSION == "fleet.nationtech.io/v1alpha1"
    assert FINALIZER == "fleet.nationtech.io/finalizer"
    assert (KIND_DEPLOYMENT, SINGULAR_DEPLOYMENT, PLURAL_DEPLOYMENTS, SHORT_NAME_DEPLOYMENT) == (
        "Deployment",
        "deployment",
        "deployments",
        "fleetdep",
    )
    assert (KIND_DEVICE, SINGULAR_DEVICE, PLURAL_DEVICES, SHORT_NAME_DEVICE) == (
        "Device",
        "device",
        "devices",
        "fleetdev",
    )
    assert CRD_NAME_DEPLOYMENT == "deployments.fleet.nationtech.io"
    assert CRD_NAME_DEVICE == "devices.fleet.nationtech.io"


def test_phases_are_fixed_in_order() -> None:
    assert [phase.value for phase in Phase] == [
        "Pending",
        "Pulling",
        "Starting",
        "Running",
        "Stopping",
        "Removed",
        "Failed",
    ]
    assert str(Phase.RUNNING) == "Running"
    assert isinstance(Phase.RUNNING, str)


def test_score_tag_is_podman() -> None:
    assert PODMAN_SCORE_TYPE == "podman"


def test_the_issue_names_are_importable_from_the_package() -> None:
    names = {
        "BUCKET_DESIRED_STATE",
        "BUCKET_DEVICE_INFO",
        "BUCKET_DEVICE_STATE",
        "BUCKET_DEVICE_HEARTBEAT",
        "desired_state_key",
        "device_info_key",
        "device_state_key",
        "device_heartbeat_key",
        "DeploymentName",
        "DeviceId",
        "CRD_GROUP",
        "FINALIZER",
        "ReconcileScore",
        "DeploymentState",
        "DeviceInfo",
        "HeartbeatPayload",
    }
    assert names <= set(contracts.__all__)
    assert all(hasattr(contracts, name) for name in contracts.__all__)


def test_enrollment_kinds_are_fixed() -> None:
    assert (
        contracts.KIND_ENROLLMENT_REQUEST,
        contracts.SINGULAR_ENROLLMENT_REQUEST,
        contracts.PLURAL_ENROLLMENT_REQUESTS,
        contracts.SHORT_NAME_ENROLLMENT_REQUEST,
        contracts.CRD_NAME_ENROLLMENT_REQUEST,
    ) == (
        "EnrollmentRequest",
        "enrollmentrequest",
        "enrollmentrequests",
        "fleetenroll",
        "enrollmentrequests.fleet.nationtech.io",
    )
    assert (
        contracts.KIND_BOOTSTRAP_TOKEN,
        contracts.SINGULAR_BOOTSTRAP_TOKEN,
        contracts.PLURAL_BOOTSTRAP_TOKENS,
        contracts.SHORT_NAME_BOOTSTRAP_TOKEN,
        contracts.CRD_NAME_BOOTSTRAP_TOKEN,
    ) == (
        "BootstrapToken",
        "bootstraptoken",
        "bootstraptokens",
        "fleettoken",
        "bootstraptokens.fleet.nationtech.io",
    )
