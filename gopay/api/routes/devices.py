"""The phones a user signs in from: list them, lock a lost one, re-enroll a found one."""

from __future__ import annotations

from fastapi import APIRouter

from gopay.aggregates.user import User
from gopay.api.deps import Caller, SystemDep
from gopay.api.schemas import DeviceId, DeviceLock, DevicePublic, DeviceReenroll, DeviceStatusPublic

router = APIRouter(tags=["devices"])


def devices_public(user: User) -> list[DevicePublic]:
    return [DevicePublic(id=device_id, enrolled_at=d.enrolled_at, last_login_at=d.last_login_at,
                         locked=d.locked, wipe=d.wipe)
            for device_id, d in sorted(user.devices.items(),
                                       key=lambda item: item[1].last_login_at, reverse=True)]


@router.get("/v1/me/devices", response_model=list[DevicePublic])
def my_devices(caller: Caller, system: SystemDep) -> list[DevicePublic]:
    """Every device that signed in to this account, most recently used first."""
    return devices_public(system.app.get_user(caller.user_id))


@router.post("/v1/me/devices/{device_id}/lock", response_model=list[DevicePublic])
def lock_device(device_id: DeviceId, body: DeviceLock, caller: Caller,
                system: SystemDep) -> list[DevicePublic]:
    """A lost or stolen phone: every token it holds stops working now; `wipe` erases it."""
    return devices_public(system.identity.lock_device(caller.user_id, device_id, wipe=body.wipe))


@router.post("/v1/me/devices/{device_id}/reenroll", response_model=list[DevicePublic])
def reenroll_device(device_id: DeviceId, body: DeviceReenroll, caller: Caller,
                    system: SystemDep) -> list[DevicePublic]:
    """A found phone may sign in again, once the password (and 2FA code, if on) prove it's you."""
    user = system.identity.reenroll_device(caller.user_id, device_id, body.password, body.otp)
    return devices_public(user)


@router.get("/v1/devices/{device_id}/status", response_model=DeviceStatusPublic)
def device_status(device_id: DeviceId, system: SystemDep) -> DeviceStatusPublic:
    """Asked by the app on start, without signing in: should this phone lock or erase itself?"""
    locked, wipe = system.identity.device_status(device_id)
    return DeviceStatusPublic(locked=locked, wipe=wipe)
