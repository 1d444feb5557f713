"""The guest sandbox runs real bash scripts against a fake guest root (localcloud.guest.sandbox)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud.guest import (
    OUTPUT_LIMIT_BYTES,
    TIMEOUT_EXIT_CODE,
    GuestDisk,
    GuestSandbox,
    GuestSpec,
    disk_serial,
    filesystem_uuid,
)

INSTANCE_ID = "i-bp1web1"
SYSTEM_DISK = GuestDisk("d-web1-0", "vda", "system", 40, "cloud_essd", disk_serial("d-web1-0"))
DATA_DISK = GuestDisk("d-web1-1", "vdb", "data", 100, "cloud_essd", disk_serial("d-web1-1"))
LOCAL_DISK = GuestDisk("d-web1-2", "vdc", "data", 1788, "local_ssd_pro", disk_serial("d-web1-2"))
ALL_DISKS = [SYSTEM_DISK, DATA_DISK, LOCAL_DISK]

# The same check a preflight makes: every UUID in fstab must belong to an attached disk.
FSTAB_CHECK = r"""
attached=$(blkid -s UUID -o value)
status=0
while read -r spec mountpoint _; do
    case $spec in
    UUID=*)
        uuid=${spec#UUID=}
        if ! grep -qx "$uuid" <<<"$attached"; then
            echo "fstab entry $mountpoint uses unknown UUID $uuid"
            status=1
        fi
        ;;
    esac
done <"${GUEST_ROOT:-}/etc/fstab"
exit $status
"""

# Assembled so this file does not trip private-key scanners itself.
RSA_ARMOR = "-----BEGIN " + "RSA PRIVATE KEY-----"
OPENSSH_ARMOR = "-----BEGIN " + "OPENSSH PRIVATE KEY-----"

MakeSandbox = Callable[..., GuestSandbox]


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[MakeSandbox]:
    created: list[GuestSandbox] = []

    def make(disks: list[GuestDisk] | None = None, **guest: object) -> GuestSandbox:
        spec = GuestSpec.from_mapping(guest)
        sandbox = GuestSandbox(INSTANCE_ID, spec, ALL_DISKS if disks is None else disks, base_dir=str(tmp_path))
        created.append(sandbox)
        return sandbox

    yield make
    for sandbox in created:
        sandbox.cleanup()


def fstab_uuids(sandbox: GuestSandbox) -> list[str]:
    text = (Path(sandbox.root) / "etc/fstab").read_text()
    return [line.split()[0].removeprefix("UUID=") for line in text.splitlines() if line.startswith("UUID=")]


def run_ok(sandbox: GuestSandbox, script: str) -> str:
    result = sandbox.run(script)
    assert result.exit_code == 0, result.output
    return result.output


# ------------------------------------------------------------------ GuestSpec


def test_spec_from_mapping_rejects_unknown_keys_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'fstab_mismatched'.*allowed keys: .*fstab_mismatch"):
        GuestSpec.from_mapping({"fstab_mismatched": True})


def test_spec_from_mapping_fills_defaults_and_checks_types() -> None:
    assert GuestSpec.from_mapping(None) == GuestSpec()
    spec = GuestSpec.from_mapping({"secrets": ["/root/.env"], "system_disk_free_mb": 512, "os": "ubuntu"})
    assert (spec.secrets, spec.system_disk_free_mb, spec.os, spec.cloud_assistant) == (
        ["/root/.env"],
        512,
        "ubuntu",
        True,
    )
    with pytest.raises(ValueError, match="system_disk_free_mb"):
        GuestSpec.from_mapping({"system_disk_free_mb": "lots"})
    with pytest.raises(ValueError, match="fstab_mismatch"):
        GuestSpec.from_mapping({"fstab_mismatch": "yes"})
    with pytest.raises(ValueError, match="absolute path"):
        GuestSpec.from_mapping({"missing_dirs": ["lib"]})


def test_sandbox_refuses_paths_that_would_remove_the_root(make_sandbox: MakeSandbox) -> None:
    with pytest.raises(ValueError, match="absolute path below /"):
        GuestSandbox(INSTANCE_ID, GuestSpec(missing_dirs=["/"]), ALL_DISKS)
    with pytest.raises(ValueError, match="missing dir"):
        make_sandbox(missing_dirs=["/root"], secrets=["/root/.ssh/id_rsa"])


# ------------------------------------------------------------------ fstab and block devices


def test_fstab_lists_exactly_the_attached_disks_by_uuid(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox()
    assert fstab_uuids(sandbox) == [filesystem_uuid(disk.disk_id) for disk in ALL_DISKS]
    mounts = [line.split()[1] for line in (Path(sandbox.root) / "etc/fstab").read_text().splitlines()[-3:]]
    assert mounts == ["/", "/data", "/data1"]
    assert filesystem_uuid("d-web1-1") == filesystem_uuid("d-web1-1")  # deterministic


def test_fstab_mismatch_adds_one_uuid_of_no_attached_disk(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(fstab_mismatch=True)
    uuids = fstab_uuids(sandbox)
    assert uuids[:-1] == [filesystem_uuid(disk.disk_id) for disk in ALL_DISKS]
    assert uuids[-1] == sandbox.detached_disk_uuid
    assert uuids[-1] not in uuids[:-1]
    assert "/mnt/olddata" in (Path(sandbox.root) / "etc/fstab").read_text().splitlines()[-1]


def test_blkid_uuid_values_match_the_attached_disks(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(fstab_mismatch=True)
    assert run_ok(sandbox, "blkid -s UUID -o value").split() == [filesystem_uuid(disk.disk_id) for disk in ALL_DISKS]
    full = run_ok(sandbox, "blkid").splitlines()
    assert full[0].startswith(f'/dev/vda1: UUID="{filesystem_uuid("d-web1-0")}"')
    assert 'TYPE="ext4"' in full[0]
    assert run_ok(sandbox, f"blkid -U {filesystem_uuid('d-web1-1')}") == "/dev/vdb\n"
    assert sandbox.run(f"blkid -U {sandbox.detached_disk_uuid}").exit_code == 2


@pytest.mark.parametrize("planted", [False, True])
def test_fstab_check_script_finds_the_mismatch_only_when_planted(make_sandbox: MakeSandbox, planted: bool) -> None:
    result = make_sandbox(fstab_mismatch=planted).run(FSTAB_CHECK)
    if planted:
        assert result.exit_code == 1
        assert "fstab entry /mnt/olddata uses unknown UUID" in result.output
    else:
        assert (result.exit_code, result.output) == (0, "")


def test_lsblk_lists_disks_partition_serials_and_local_disks(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox()
    rows = [
        line.split(" ") for line in run_ok(sandbox, "lsblk -rno NAME,UUID,SERIAL,SIZE,TYPE,MOUNTPOINT").splitlines()
    ]
    assert rows == [
        ["vda", "", "web1-0", "40G", "disk", ""],
        ["vda1", filesystem_uuid("d-web1-0"), "", "40G", "part", "/"],
        ["vdb", filesystem_uuid("d-web1-1"), "web1-1", "100G", "disk", "/data"],
        ["vdc", filesystem_uuid("d-web1-2"), "web1-2", "1.7T", "disk", "/data1"],
    ]
    assert run_ok(sandbox, "lsblk -dn -o NAME").split() == ["vda", "vdb", "vdc"]
    assert run_ok(sandbox, "lsblk -P -o NAME,TYPE /dev/vda").splitlines() == [
        'NAME="vda" TYPE="disk"',
        'NAME="vda1" TYPE="part"',
    ]
    assert run_ok(sandbox, "lsblk -no UUID /dev/vda1").strip() == filesystem_uuid("d-web1-0")


def test_shims_reject_flags_they_do_not_understand(make_sandbox: MakeSandbox) -> None:
    result = make_sandbox().run("lsblk -J; echo lsblk=$?; df -x tmpfs; echo df=$?")
    assert "lsblk=2" in result.output and "df=2" in result.output
    assert "not supported by the localcloud guest shim" in result.output


# ------------------------------------------------------------------ disk space


def test_df_reports_the_configured_free_space_of_the_root_filesystem(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(system_disk_free_mb=1500)
    header, root_line = run_ok(sandbox, "df -Pm /").splitlines()
    assert header.split() == [
        "Filesystem",
        "1048576-blocks",
        "Used",
        "Available",
        "Capacity",
        "Mounted",
        "on",
    ]
    assert root_line.split() == ["/dev/vda1", "40960", "39460", "1500", "97%", "/"]
    # Scripts address the guest as ${GUEST_ROOT:-}/...; the shim maps that back to the guest mount.
    assert run_ok(sandbox, 'df -Pk "${GUEST_ROOT:-}/etc"').splitlines()[1].split()[3] == str(1500 * 1024)
    assert run_ok(sandbox, 'df -Pm "${GUEST_ROOT:-}/data"').splitlines()[1].split()[0] == "/dev/vdb"
    assert [line.split()[-1] for line in run_ok(sandbox, "df -Pm").splitlines()[1:]] == [
        "/",
        "/data",
        "/data1",
    ]
    assert run_ok(sandbox, "df --output=avail -m /").split() == ["Avail", "1500"]


# ------------------------------------------------------------------ files


def test_missing_dirs_are_absent_and_the_rest_of_the_tree_is_there(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(missing_dirs=["/lib", "/usr/bin"])
    root = Path(sandbox.root)
    assert not (root / "lib").exists() and not (root / "usr/bin").exists()
    for present in ("bin", "sbin", "usr/lib", "etc", "root", "home", "var/log", "tmp"):
        assert (root / present).is_dir(), present
    assert 'ID="alinux"' in (root / "etc/os-release").read_text()
    assert (root / "etc/hostname").read_text() == "iZbp1web1Z\n"
    result = sandbox.run('for d in /lib /bin; do [ -d "${GUEST_ROOT:-}$d" ] && echo "$d ok" || echo "$d missing"; done')
    assert result.output == "/lib missing\n/bin ok\n"


def test_secrets_get_content_of_their_kind_next_to_harmless_files(make_sandbox: MakeSandbox) -> None:
    secrets = {
        "/root/.ssh/id_rsa": RSA_ARMOR,
        "/home/admin/.ssh/id_ed25519": OPENSSH_ARMOR,
        "/etc/nginx/ssl/site.pem": RSA_ARMOR,
        "/root/.bash_history": "mysql -uroot -p",
        "/opt/app/.env": "ALIBABA_CLOUD_ACCESS_KEY_SECRET=",
        "/root/.alibabacloud/credentials": "ALIBABA_CLOUD_ACCESS_KEY_SECRET=",
        "/etc/app/token": "password = ",
    }
    sandbox = make_sandbox(secrets=[*secrets, "/root/.aliyun/config.json"])
    root = Path(sandbox.root)
    for path, marker in secrets.items():
        assert marker in (root / path.lstrip("/")).read_text(), path
        assert (root / path.lstrip("/")).stat().st_mode & 0o777 == 0o600
    profile = json.loads((root / "root/.aliyun/config.json").read_text())["profiles"][0]
    assert profile["access_key_id"].startswith("LTAI") and len(profile["access_key_secret"]) == 30
    # Look-alikes a checker must not flag.
    assert (root / "root/.ssh/authorized_keys").read_text().startswith("ssh-ed25519 ")
    assert (root / "root/.ssh/id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    assert "alias" in (root / "root/.bashrc").read_text()
    hits = run_ok(sandbox, 'grep -rl "PRIVATE KEY-----" "${GUEST_ROOT:-}/" | sort')
    assert hits.split() == sorted(
        sandbox.guest_path(path)
        for path in ("/root/.ssh/id_rsa", "/home/admin/.ssh/id_ed25519", "/etc/nginx/ssl/site.pem")
    )


def test_secret_paths_cannot_escape_the_sandbox(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(secrets=["/../../../escaped.key"])
    assert (Path(sandbox.root) / "escaped.key").is_file()
    assert not (tmp_path / "escaped.key").exists()
    assert sandbox.guest_path("/../etc/fstab") == os.path.join(sandbox.root, "etc/fstab")


# ------------------------------------------------------------------ running scripts


def test_scripts_see_guest_root_home_and_working_dir(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox()
    result = sandbox.run(
        'echo "$GUEST_ROOT|$HOME|$PWD|$GREETING"\necho note >"${GUEST_ROOT:-}/tmp/note"; echo oops >&2; exit 3',
        working_dir="/opt/app",
        env={"GREETING": "hi"},
    )
    assert result.exit_code == 3 and not result.timed_out
    assert result.output == f"{sandbox.root}|{sandbox.root}/root|{sandbox.root}/opt/app|hi\noops\n"
    assert (Path(sandbox.root) / "tmp/note").read_text() == "note\n"
    assert run_ok(sandbox, "command -v df lsblk blkid").split() == [
        os.path.join(sandbox.base_dir, "shims", tool) for tool in ("df", "lsblk", "blkid")
    ]


def test_timeout_kills_the_script_and_its_children(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox()
    started = time.monotonic()
    result = sandbox.run("echo started; sleep 5 & sleep 5; echo never", timeout_s=1)
    assert time.monotonic() - started < 3
    assert (result.timed_out, result.exit_code, result.output) == (True, TIMEOUT_EXIT_CODE, "started\n")


def test_output_keeps_the_first_24_kib_and_counts_the_dropped_bytes(make_sandbox: MakeSandbox) -> None:
    result = make_sandbox().run("head -c 30000 /dev/zero | tr '\\0' a; echo -n END >&2")
    assert result.output == "a" * OUTPUT_LIMIT_BYTES
    assert result.dropped == 30000 + len("END") - OUTPUT_LIMIT_BYTES
    assert result.exit_code == 0


def test_cleanup_removes_the_tree(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox()
    assert os.path.basename(sandbox.base_dir).startswith("localcloud-guest-")
    sandbox.cleanup()
    assert not os.path.exists(sandbox.base_dir)
    sandbox.cleanup()  # idempotent
    with pytest.raises(RuntimeError, match="cleaned up"):
        sandbox.run("true")


def test_default_base_dir_is_a_fresh_temp_dir() -> None:
    with GuestSandbox(INSTANCE_ID, GuestSpec(), [SYSTEM_DISK]) as sandbox:
        assert os.path.basename(sandbox.base_dir).startswith("localcloud-guest-")
        assert run_ok(sandbox, "blkid -s UUID -o value").split() == [filesystem_uuid("d-web1-0")]
    assert not os.path.exists(sandbox.base_dir)
