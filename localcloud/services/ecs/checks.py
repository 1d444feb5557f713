"""The image check ("check after creation") and what ACS-ECS-RepairImage can fix.

The official list of check item names and risk codes is UNCONFIRMED (alibaba-apis.md §2.4); this
set is modelled on the documented Linux items and the template's `repairItems` values.
"""

from __future__ import annotations

# Check item Name → (RiskCode, RiskLevel, repairItems value that fixes it).
CHECK_ITEMS: dict[str, tuple[str, str, str]] = {
    "Virtio": ("Virtio.NotInstalled", "High", "virtio"),
    "Nvme": ("NVMe.NotInstalled", "High", "nvme"),
    "Fstab": ("Fstab.Invalid", "High", "fstab"),
    "Grub": ("Grub.Invalid", "High", "grub"),
    "Dhcp": ("Dhcp.NotEnabled", "High", "dhcp"),
    "Selinux": ("Selinux.Enforcing", "Medium", "selinux"),
    "CloudAssistant": ("CloudAssistant.NotInstalled", "Medium", "assist"),
    "SecurityCenterAgent": ("SecurityCenterAgent.NotInstalled", "Medium", "aegis"),
    "CloudInit": ("CloudInit.NotInstalled", "Medium", "cloudinit"),
    "OnlineResizeFS": ("OnlineResizeFS.NotSupported", "Medium", "growpart"),
}

REPAIR_ITEMS = ("all", "assist", "aegis", "growpart", "virtio", "selinux", "dhcp", "grub", "fstab", "nvme", "cloudinit")

# Platforms whose images the check does not support (UNCONFIRMED list; the docs say "some OS versions").
UNSUPPORTED_PLATFORMS = {"FreeBSD", "CoreOS", "Fedora CoreOS", "Gentoo", "Windows Server 2003", "Windows Server 2008"}


def failing_items(check_failures: list[str], fstab_mismatch: bool) -> list[str]:
    """Names of the check items that fail for a guest (a broken fstab fails the Fstab item)."""
    names = list(dict.fromkeys(check_failures))
    if fstab_mismatch and "Fstab" not in names:
        names.append("Fstab")
    return names


def check_result_items(failing: list[str]) -> list[dict[str, str]]:
    """DetectionOptions.Items.Item[]: every item, with RiskLevel/RiskCode only on failing ones."""
    items = []
    for name in CHECK_ITEMS:
        if name in failing:
            code, level, _ = CHECK_ITEMS[name]
            items.append({"Name": name, "Value": "Unsupported", "RiskLevel": level, "RiskCode": code})
        else:
            items.append({"Name": name, "Value": "Supported"})
    for name in failing:
        if name not in CHECK_ITEMS:  # an item no repair covers: still reported, never fixed
            items.append({"Name": name, "Value": "Unsupported", "RiskLevel": "High", "RiskCode": f"{name}.Invalid"})
    return items


def fixed_by(repair_items: list[str], failing: list[str]) -> list[str]:
    """The failing items a repair with `repair_items` fixes."""
    chosen = set(repair_items)
    return [name for name in failing if name in CHECK_ITEMS and ("all" in chosen or CHECK_ITEMS[name][2] in chosen)]
