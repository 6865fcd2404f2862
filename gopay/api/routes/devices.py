"""The phones a user signs in from: list them, lock a lost one, re-enroll a found one."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from gopay.api.deps import Caller, SystemDep
from gopay.api.schemas import DeviceId, DeviceLock, DevicePublic, DeviceReenroll, DeviceStatusPublic
from gopay.commands.devices import LockDevice, ReenrollDevice
from gopay.system import System

router = APIRouter(tags=["devices"])


def devices_public(system: System, user_id: UUID, position: int) -> list[DevicePublic]:
    """The user's devices as the read side shows them once it has reached `position`."""
    system.show(position)
    return [DevicePublic(id=row["device_id"], enrolled_at=row["enrolled_at"],
                         last_login_at=row["last_login_at"], locked=row["locked"],
                         wipe=row["wipe"])
            for row in system.read_side.security.devices(user_id)]


@router.get("/v1/me/devices", response_model=list[DevicePublic])
def my_devices(caller: Caller, system: SystemDep) -> list[DevicePublic]:
    """Every device that signed in to this account, most recently used first."""
    return devices_public(system, caller.user_id, system.head())


@router.post("/v1/me/devices/{device_id}/lock", response_model=list[DevicePublic])
def lock_device(device_id: DeviceId, body: DeviceLock, caller: Caller,
                system: SystemDep) -> list[DevicePublic]:
    """A lost or stolen phone: every token it holds stops working now; `wipe` erases it."""
    outcome = system.commands.run(LockDevice(user_id=caller.user_id, device_id=device_id,
                                             wipe=body.wipe))
    return devices_public(system, caller.user_id, outcome.position)


@router.post("/v1/me/devices/{device_id}/reenroll", response_model=list[DevicePublic])
def reenroll_device(device_id: DeviceId, body: DeviceReenroll, caller: Caller,
                    system: SystemDep) -> list[DevicePublic]:
    """A found phone may sign in again, once the password (and 2FA code, if on) prove it's you."""
    outcome = system.commands.run(ReenrollDevice(user_id=caller.user_id, device_id=device_id,
                                                 password=body.password, code=body.otp))
    return devices_public(system, caller.user_id, outcome.position)


@router.get("/v1/devices/{device_id}/status", response_model=DeviceStatusPublic)
def device_status(device_id: DeviceId, system: SystemDep) -> DeviceStatusPublic:
    """Asked by the app on start, without signing in: should this phone lock or erase itself?"""
    system.catch_up_reads()
    locked, wipe = system.read_side.security.device_status(device_id)
    return DeviceStatusPublic(locked=locked, wipe=wipe)
