"""The guest sandbox runs real bash scripts against a fake guest root (localcloud.guest.sandbox)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
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
from localcloud.guest.confine import ConfinementError, namespace_unavailable_reason, probe_namespaces, remote_listeners

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

NAMESPACES_MISSING = namespace_unavailable_reason()
needs_namespaces = pytest.mark.skipif(
    NAMESPACES_MISSING is not None,
    reason=f"scripts cannot be confined on this host ({NAMESPACES_MISSING}); what happens instead is "
    "test_a_host_without_user_namespaces_falls_back_or_refuses, which runs here",
)
# Behaviour that must not depend on the confinement: run both ways.
BOTH_MODES = pytest.mark.parametrize("confinement", [pytest.param("namespace", marks=needs_namespaces), "none"])


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[MakeSandbox]:
    created: list[GuestSandbox] = []

    def make(disks: list[GuestDisk] | None = None, confinement: str | None = None, **guest: object) -> GuestSandbox:
        spec = GuestSpec.from_mapping(guest)
        disks = ALL_DISKS if disks is None else disks
        sandbox = GuestSandbox(INSTANCE_ID, spec, disks, base_dir=str(tmp_path), confinement=confinement)
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


@BOTH_MODES
def test_blkid_uuid_values_match_the_attached_disks(make_sandbox: MakeSandbox, confinement: str) -> None:
    sandbox = make_sandbox(fstab_mismatch=True, confinement=confinement)
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


@BOTH_MODES
def test_df_reports_the_configured_free_space_of_the_root_filesystem(
    make_sandbox: MakeSandbox, confinement: str
) -> None:
    sandbox = make_sandbox(system_disk_free_mb=1500, confinement=confinement)
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


@BOTH_MODES
def test_scripts_see_guest_root_home_and_working_dir(make_sandbox: MakeSandbox, confinement: str) -> None:
    sandbox = make_sandbox(confinement=confinement)
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


@BOTH_MODES
def test_timeout_kills_the_script_and_its_children(make_sandbox: MakeSandbox, confinement: str) -> None:
    sandbox = make_sandbox(confinement=confinement)
    started = time.monotonic()
    result = sandbox.run("echo started; sleep 5 & sleep 5; echo never", timeout_s=1)
    assert time.monotonic() - started < 3
    assert (result.timed_out, result.exit_code, result.output) == (True, TIMEOUT_EXIT_CODE, "started\n")


@BOTH_MODES
def test_output_keeps_the_first_24_kib_and_counts_the_dropped_bytes(
    make_sandbox: MakeSandbox, confinement: str
) -> None:
    result = make_sandbox(confinement=confinement).run("head -c 30000 /dev/zero | tr '\\0' a; echo -n END >&2")
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


@BOTH_MODES
def test_a_script_killed_by_a_signal_reports_128_plus_its_number(make_sandbox: MakeSandbox, confinement: str) -> None:
    result = make_sandbox(confinement=confinement).run("echo before; kill -TERM $$; echo after")
    assert (result.exit_code, result.output, result.timed_out) == (128 + 15, "before\n", False)


# ------------------------------------------------------------------ confinement


def attempt(label: str, command: str) -> str:
    """A script line printing label=ok if ``command`` succeeds, else label=denied."""
    return f"if ( {command} ) 2>/dev/null; then echo {label}=ok; else echo {label}=denied; fi\n"


@needs_namespaces
def test_a_confined_script_writes_its_guest_and_nothing_else(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    sandbox = make_sandbox(confinement="namespace")
    existing = tmp_path / "existing.txt"
    existing.write_text("original\n")
    shim = Path(sandbox.shim_dir, "df")
    shim_before = shim.read_bytes()
    marker = f"localcloud-escape-{uuid.uuid4().hex}"
    new_files = {
        "test_dir": tmp_path / marker,
        "home": Path.home() / marker,
        "tmp": Path("/tmp", marker),
        "var_tmp": Path("/var/tmp", marker),
        "usr": Path("/usr", marker),
        "root": Path("/", marker),  # the jail's own /, which lives in the sandbox on the host
    }
    targets = {"existing": existing, "shim": shim, **new_files}
    script = "".join(attempt(label, f'echo escaped >>"{path}"') for label, path in targets.items())
    script += attempt("dev_shm", f'echo escaped >"/dev/shm/{marker}"')
    script += attempt("guest", 'echo mine >"$GUEST_ROOT/root/mine"')
    try:
        result = sandbox.run(script)
    finally:  # if confinement is broken, leave no litter behind
        for path in [*new_files.values(), Path("/dev/shm", marker)]:
            path.unlink(missing_ok=True)
    assert result.output.splitlines() == [f"{label}=denied" for label in [*targets, "dev_shm"]] + ["guest=ok"]
    assert existing.read_text() == "original\n"
    assert shim.read_bytes() == shim_before
    assert not Path(sandbox.base_dir, "jail", marker).exists()
    assert (Path(sandbox.root) / "root/mine").read_text() == "mine\n"


def test_an_unconfined_script_writes_outside_which_is_why_it_is_not_the_default(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # The control for the test above: the same attempt succeeds without namespaces.
    existing = tmp_path / "existing.txt"
    existing.write_text("original\n")
    result = make_sandbox(confinement="none").run(attempt("existing", f'echo escaped >>"{existing}"'))
    assert result.output == "existing=ok\n"
    assert existing.read_text() == "original\nescaped\n"


@needs_namespaces
def test_a_confined_script_cannot_make_a_working_dir_through_a_symlink(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # A symlink a script left in the guest must not lead the next run's mkdir out of it.
    sandbox = make_sandbox(confinement="namespace")
    outside = tmp_path / "outside"
    outside.mkdir()
    run_ok(sandbox, f'ln -s "{outside}" "$GUEST_ROOT/srv"')
    assert sandbox.run("pwd", working_dir="/srv/app").output == sandbox.root + "\n"
    assert list(outside.iterdir()) == []


@needs_namespaces
def test_a_confined_script_reads_its_guest_but_not_the_host(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text("TOPSECRET-on-the-host\n")
    host_secret.chmod(0o600)
    sandbox = make_sandbox(confinement="namespace", secrets=["/root/.ssh/id_rsa"])
    script = "".join(
        attempt(label, f'cat "{path}"')
        for label, path in (("host_secret", host_secret), ("shadow", "/etc/shadow"), ("ssh_host_key", "/etc/ssh"))
    )
    script += attempt("home", f'ls -A "{Path.home()}" | grep -q .')
    result = sandbox.run(script)
    assert result.output.splitlines() == ["host_secret=denied", "shadow=denied", "ssh_host_key=denied", "home=denied"]
    assert "TOPSECRET" not in result.output
    # What / holds: the host's system dirs, a minimal /etc, /dev, /proc, and the path down to the guest.
    top = set(run_ok(sandbox, "ls -A /").split())
    assert top <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc"} | {
        sandbox.base_dir.split("/")[1]
    }
    assert set(run_ok(sandbox, "ls -A /dev").split()) == {
        "null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr",
    }  # fmt: skip
    assert RSA_ARMOR in run_ok(sandbox, 'cat "$GUEST_ROOT/root/.ssh/id_rsa"')


@BOTH_MODES
def test_only_an_unconfined_script_reaches_a_loopback_listener(make_sandbox: MakeSandbox, confinement: str) -> None:
    sandbox = make_sandbox(confinement=confinement)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = sandbox.run(attempt("connect", f"exec 3<>/dev/tcp/127.0.0.1/{port}"))
        listener.settimeout(0.5)
        try:
            listener.accept()[0].close()
            accepted = True
        except TimeoutError:
            accepted = False
    expected = confinement == "none"
    assert (result.output, accepted) == (f"connect={'ok' if expected else 'denied'}\n", expected)


@needs_namespaces
def test_a_confined_script_is_root_without_privileges_among_its_own_processes(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(confinement="namespace")
    script = attempt("see_host_process", f"kill -0 {os.getpid()}")
    script += attempt("remount_usr", "mount -o remount,rw,bind /usr")
    script += attempt("unmount_proc", "umount /proc")
    script += attempt("write_proc", "echo 1 >/proc/sys/kernel/printk_ratelimit")
    script += "id -u; grep CapEff /proc/self/status; ls /proc | grep -c '^[0-9]'\n"
    lines = run_ok(sandbox, script).splitlines()
    denied = ["see_host_process", "remount_usr", "unmount_proc", "write_proc"]
    assert lines[:-3] == [f"{label}=denied" for label in denied]
    assert lines[-3:-1] == ["0", "CapEff:\t0000000000000000"]  # uid 0, as on a real instance, with no capability
    assert int(lines[-1]) <= 4  # pid 1, the script, ls and grep


@needs_namespaces
def test_processes_that_left_the_process_group_end_with_a_confined_script(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(confinement="namespace")
    late = Path(sandbox.root) / "tmp/late"
    result = sandbox.run(f'setsid sh -c "sleep 1; echo late >{late}" </dev/null >/dev/null 2>&1 & echo started')
    assert (result.exit_code, result.output) == (0, "started\n")
    time.sleep(1.5)
    assert not late.exists()


@needs_namespaces
def test_confined_and_unconfined_runs_of_the_preflight_agree(make_sandbox: MakeSandbox) -> None:
    from bakery.preflight.report import preflight_script

    guest = {"secrets": ["/root/.ssh/id_rsa"], "fstab_mismatch": True, "missing_dirs": ["/lib"]}
    confined = make_sandbox(confinement="namespace", **guest).run(preflight_script())
    unconfined = make_sandbox(confinement="none", **guest).run(preflight_script())
    assert (confined.exit_code, confined.output) == (unconfined.exit_code, unconfined.output)
    assert "FINDING secrets /root/.ssh/id_rsa private-key" in confined.output
    assert confined.output.endswith("RESULT fail 3\n")


# ------------------------------------------------------------------ modes and the fallback


def test_the_mode_comes_from_the_argument_else_the_environment(
    make_sandbox: MakeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCALCLOUD_SANDBOX", raising=False)
    default = make_sandbox()
    assert (default.confinement, default.confined) == ("auto", NAMESPACES_MISSING is None)
    monkeypatch.setenv("LOCALCLOUD_SANDBOX", "none")
    assert (make_sandbox().confinement, make_sandbox().confined) == ("none", False)
    assert make_sandbox(confinement="namespace").confinement == "namespace"
    # A typo must not mean "none".
    monkeypatch.setenv("LOCALCLOUD_SANDBOX", "off")
    with pytest.raises(ConfinementError, match=r"LOCALCLOUD_SANDBOX='off' is not one of auto, namespace, none"):
        make_sandbox()
    with pytest.raises(ConfinementError, match=r"confinement='chroot' is not one of"):
        make_sandbox(confinement="chroot")


@pytest.mark.parametrize(("host", "refused"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_an_unconfined_run_is_refused_while_this_process_listens_beyond_loopback(
    make_sandbox: MakeSandbox, host: str, refused: bool
) -> None:
    sandbox = make_sandbox(confinement="none")
    ran = Path(sandbox.root) / "root/ran"
    with socket.socket() as listener:
        listener.bind((host, 0))
        listener.listen()
        port = listener.getsockname()[1]
        if refused:
            with pytest.raises(ConfinementError, match=rf"unconfined .* listens on 0\.0\.0\.0:{port}: .*remote shell"):
                sandbox.run('touch "$HOME/ran"')
            assert not ran.exists()
        else:
            run_ok(sandbox, 'touch "$HOME/ran"')
            assert ran.exists()
    run_ok(sandbox, "true")  # the listener is closed


@needs_namespaces
def test_a_confined_run_is_allowed_while_this_process_listens_beyond_loopback(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(confinement="auto")
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        assert run_ok(sandbox, "echo confined") == "confined\n"


def test_remote_listeners_are_listening_tcp_sockets_beyond_loopback() -> None:
    sockets = []
    try:
        for family, host, listen, kind in [
            (socket.AF_INET, "0.0.0.0", True, socket.SOCK_STREAM),
            (socket.AF_INET, "127.0.0.1", True, socket.SOCK_STREAM),
            (socket.AF_INET, "0.0.0.0", False, socket.SOCK_STREAM),  # bound, not listening
            (socket.AF_INET, "0.0.0.0", False, socket.SOCK_DGRAM),
        ]:
            sock = socket.socket(family, kind)
            sockets.append(sock)
            sock.bind((host, 0))
            if listen:
                sock.listen()
        wildcard_port = sockets[0].getsockname()[1]
        assert remote_listeners() == [f"0.0.0.0:{wildcard_port}"]
    finally:
        for sock in sockets:
            sock.close()
    assert remote_listeners() == []


def test_the_probe_says_why_namespaces_are_unavailable(tmp_path: Path) -> None:
    assert probe_namespaces(tool_path=str(tmp_path)) is not None  # no tool there at all
    if sys.platform.startswith("linux"):
        assert "unshare, mount, umount, pivot_root, setpriv not found" in str(probe_namespaces(tool_path=str(tmp_path)))
        # A container that forbids user namespaces: unshare is there but fails.
        for tool in ("mount", "umount", "pivot_root", "setpriv"):
            found = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
            if found:
                (tmp_path / tool).symlink_to(found)
        fake = tmp_path / "unshare"
        fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
        fake.chmod(0o755)
        if all((tmp_path / tool).exists() for tool in ("mount", "umount", "pivot_root", "setpriv")):
            assert "unshare failed: Operation not permitted" in str(probe_namespaces(tool_path=str(tmp_path)))


# Run in a child process on a host without user namespaces: what auto and namespace do there.
RESTRICTED_CHILD = textwrap.dedent(
    """
    import json, socket, sys
    from localcloud.guest import GuestDisk, GuestSandbox, GuestSpec
    from localcloud.guest.confine import ConfinementError, namespace_unavailable_reason

    def run(box):
        try:
            result = box.run("echo ran; blkid -s UUID -o value | wc -l")
        except ConfinementError as exc:
            return str(exc)
        return [box.confined, result.exit_code, result.output]

    disk = GuestDisk("d-0", "vda", "system", 40, "cloud_essd", "0")
    report = {"reason": namespace_unavailable_reason()}
    with GuestSandbox("i-auto", GuestSpec(), [disk], base_dir=sys.argv[1]) as box:
        report["auto"] = run(box)
        with socket.socket() as listener:
            listener.bind(("0.0.0.0", 0))
            listener.listen()
            report["auto_remote"] = run(box)
    with GuestSandbox("i-ns", GuestSpec(), [disk], base_dir=sys.argv[1], confinement="namespace") as box:
        report["namespace"] = run(box)
    print(json.dumps(report))
    """
)


def test_a_host_without_user_namespaces_falls_back_or_refuses(tmp_path: Path) -> None:
    child = [sys.executable, "-c", RESTRICTED_CHILD, str(tmp_path)]
    if NAMESPACES_MISSING is None:
        # Make this host one without them: a user namespace whose own limit forbids nested ones, as
        # unprivileged_userns_clone=0 or a container's seccomp profile would.
        unshare = shutil.which("unshare", path="/usr/bin:/bin")
        assert unshare
        restrict = 'echo 0 >/proc/sys/user/max_user_namespaces && exec "$@"'
        child = [unshare, "--user", "--map-root-user", "--", "/bin/sh", "-c", restrict, "sh", *child]
    env = {**os.environ}
    env.pop("LOCALCLOUD_SANDBOX", None)
    repo = Path(__file__).resolve().parents[2]
    completed = subprocess.run(child, capture_output=True, text=True, timeout=120, cwd=repo, env=env, check=False)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["reason"]  # probed, and found wanting
    # auto: the demo still works, unconfined, with a warning...
    assert report["auto"] == [False, 0, "ran\n1\n"]
    assert "WARNING: Cloud Assistant scripts run UNCONFINED" in completed.stderr
    # ...but never as a shell for whoever reaches a non-loopback port,
    assert "refusing to run a script unconfined" in report["auto_remote"]
    assert "listens on 0.0.0.0:" in report["auto_remote"]
    # and namespace refuses, saying why.
    assert report["namespace"].startswith("sandbox mode 'namespace', but scripts cannot be confined here: ")
    assert report["reason"] in report["namespace"]
