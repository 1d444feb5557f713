"""The preflight gate script (shared/bakery/preflight/preflight.sh) run by real bash, and its parser.

The script runs against fake guest roots: mostly localcloud's GuestSandbox (whose df/lsblk/blkid
shims describe the guest's disks), once against a root built here by hand with shims of our own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bakery.preflight.report import HEADER, Finding, PreflightReport, parse_report, preflight_script
from localcloud.guest import GuestDisk, GuestSandbox, GuestSpec, ScriptResult, disk_serial, filesystem_uuid

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT_PATH = REPO_ROOT / "shared" / "bakery" / "preflight" / "preflight.sh"
SCRIPT = SCRIPT_PATH.read_text(encoding="utf-8")

INSTANCE_ID = "i-bp1pre1"
SYSTEM_DISK = GuestDisk("d-pre1-0", "vda", "system", 40, "cloud_essd", disk_serial("d-pre1-0"))
DATA_DISK = GuestDisk("d-pre1-1", "vdb", "data", 100, "cloud_essd", disk_serial("d-pre1-1"))
DISKS = [SYSTEM_DISK, DATA_DISK]

SECRET_KINDS = {
    "/root/.ssh/id_rsa": "private-key",
    "/home/admin/.ssh/id_ed25519": "private-key",
    "/root/.aliyun/config.json": "cloud-credentials",
    "/root/.bash_history": "history-password",
    "/root/app/.env": "cloud-credentials",
}
# Assembled so this file does not trip private-key scanners itself.
RSA_KEY = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAfake\n-----END " + "RSA PRIVATE KEY-----\n"
LINE_RE = re.compile(r"(BAKERY-PREFLIGHT v1|SKIP \S+|FINDING \S+ \S+ [ -~]*|ERROR \S+ [ -~]*|RESULT (pass|fail) \d+)")

MakeGuest = Callable[..., GuestSandbox]


@pytest.fixture
def make_guest(tmp_path: Path) -> Iterator[MakeGuest]:
    created: list[GuestSandbox] = []

    def make(disks: list[GuestDisk] | None = None, **guest: object) -> GuestSandbox:
        sandbox = GuestSandbox(INSTANCE_ID, GuestSpec.from_mapping(guest), disks or DISKS, base_dir=str(tmp_path))
        created.append(sandbox)
        return sandbox

    yield make
    for sandbox in created:
        sandbox.cleanup()


def run(sandbox: GuestSandbox, **env: str) -> ScriptResult:
    result = sandbox.run(SCRIPT, timeout_s=30, env=env)
    assert not result.timed_out and result.dropped == 0, result.output
    return result


def findings(result: ScriptResult) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("FINDING ")]


def assert_report(result: ScriptResult, expected: list[str], exit_code: int) -> None:
    """The whole output: header, exactly the expected lines, a RESULT that counts the findings."""
    count = sum(line.startswith("FINDING ") for line in expected)
    verdict = "pass" if exit_code == 0 else "fail"
    assert result.output.splitlines() == [HEADER, *expected, f"RESULT {verdict} {count}"], result.output
    assert result.exit_code == exit_code, result.output


def write(sandbox: GuestSandbox, guest_path: str, content: str | bytes) -> Path:
    path = Path(sandbox.guest_path(guest_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# ------------------------------------------------------------------ the script on a sandbox guest


def test_clean_guest_passes(make_guest: MakeGuest) -> None:
    result = run(make_guest())
    assert result.output == f"{HEADER}\nRESULT pass 0\n"
    assert result.exit_code == 0
    assert parse_report(result.output, result.exit_code) == PreflightReport([], [], True)


def test_preflight_script_helper_returns_the_shipped_file() -> None:
    assert preflight_script() == SCRIPT


@pytest.mark.parametrize(
    ("free_mb", "env", "expected"),
    [
        (500, {}, ["FINDING disk-space / free=500MB required=1024MB"]),
        (1023, {}, ["FINDING disk-space / free=1023MB required=1024MB"]),
        (1024, {}, []),
        (20000, {}, []),
        (2000, {"MIN_FREE_MB": "1500"}, []),
        (2000, {"MIN_FREE_MB": "4096"}, ["FINDING disk-space / free=2000MB required=4096MB"]),
        (90, {"MIN_FREE_MB": "0100"}, ["FINDING disk-space / free=90MB required=100MB"]),  # not octal
        (0, {"MIN_FREE_MB": "0"}, []),
    ],
)
def test_disk_space(make_guest: MakeGuest, free_mb: int, env: dict[str, str], expected: list[str]) -> None:
    result = run(make_guest(system_disk_free_mb=free_mb), **env)
    assert_report(result, expected, 1 if expected else 0)


@pytest.mark.parametrize("bad", ["lots", "-5", "1e3", "12 MB", "9999999999"])
def test_disk_space_bad_min_free_mb_is_an_error_not_a_pass(make_guest: MakeGuest, bad: str) -> None:
    result = run(make_guest(system_disk_free_mb=10), MIN_FREE_MB=bad)
    assert result.exit_code == 2, result.output
    escaped = bad.replace(" ", "\\x20")
    assert [line for line in result.output.splitlines() if line.startswith("ERROR")] == [
        f"ERROR disk-space MIN_FREE_MB={escaped} is not a number of MB"
    ]
    assert result.output.splitlines()[-1] == "RESULT fail 0"
    assert not parse_report(result.output, result.exit_code).passed


def test_fstab_entry_of_a_detached_disk(make_guest: MakeGuest) -> None:
    sandbox = make_guest(fstab_mismatch=True)
    assert sandbox.detached_disk_uuid
    result = run(sandbox)
    assert_report(result, [f"FINDING fstab /mnt/olddata UUID={sandbox.detached_disk_uuid} not on any attached disk"], 1)


def test_fstab_of_a_system_disk_only_guest_is_clean(make_guest: MakeGuest) -> None:
    assert_report(run(make_guest(disks=[SYSTEM_DISK])), [], 0)


def test_fstab_entry_of_a_data_disk_that_was_detached_later(make_guest: MakeGuest) -> None:
    # The data disk's fstab line stays, the disk is gone: same guest tree, fewer disks.
    sandbox = make_guest()
    fstab = Path(sandbox.guest_path("/etc/fstab")).read_text()
    lonely = make_guest(disks=[SYSTEM_DISK])
    write(lonely, "/etc/fstab", fstab)
    expected = f"FINDING fstab /data UUID={filesystem_uuid(DATA_DISK.disk_id)} not on any attached disk"
    assert_report(run(lonely), [expected], 1)


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        (["/lib"], ["FINDING system-dirs /lib missing"]),
        (["/usr/bin", "/sbin"], ["FINDING system-dirs /sbin missing", "FINDING system-dirs /usr/bin missing"]),
        (["/usr"], ["FINDING system-dirs /usr/bin missing", "FINDING system-dirs /usr/lib missing"]),
    ],
)
def test_system_dirs_missing(make_guest: MakeGuest, missing: list[str], expected: list[str]) -> None:
    assert_report(run(make_guest(missing_dirs=missing)), expected, 1)


def test_system_dirs_empty_or_not_a_directory(make_guest: MakeGuest) -> None:
    sandbox = make_guest()
    lib = Path(sandbox.guest_path("/lib"))
    shutil.rmtree(lib)
    lib.mkdir()
    sbin = Path(sandbox.guest_path("/sbin"))
    shutil.rmtree(sbin)
    sbin.write_text("not a directory\n")
    assert_report(run(sandbox), ["FINDING system-dirs /sbin not-a-directory", "FINDING system-dirs /lib empty"], 1)


def test_system_dirs_as_usrmerge_symlinks_are_fine(make_guest: MakeGuest) -> None:
    sandbox = make_guest()
    for name in ("bin", "sbin", "lib"):
        shutil.rmtree(sandbox.guest_path(f"/{name}"))
        os.symlink(f"usr/{name if name != 'sbin' else 'bin'}", sandbox.guest_path(f"/{name}"))
    assert_report(run(sandbox), [], 0)
    os.unlink(sandbox.guest_path("/lib"))
    os.symlink("usr/nowhere", sandbox.guest_path("/lib"))  # dangling: as good as missing
    assert_report(run(sandbox), ["FINDING system-dirs /lib missing"], 1)


def test_system_dirs_holding_only_hidden_or_dangling_entries_are_not_empty(make_guest: MakeGuest) -> None:
    """A directory is listed without a process (a glob); what counts as an entry is still what find lists."""
    sandbox = make_guest()
    for name, entry in (("/lib", ".hidden"), ("/sbin", "..two-dots"), ("/etc", "dangling")):
        shutil.rmtree(sandbox.guest_path(name))
        os.mkdir(sandbox.guest_path(name))
        if entry == "dangling":
            os.symlink("/nowhere", sandbox.guest_path(f"{name}/{entry}"))
        else:
            write(sandbox, f"{name}/{entry}", "x\n")
    assert_report(run(sandbox), [], 0)


def test_secrets_among_many_files_are_all_found(make_guest: MakeGuest) -> None:
    """A file list too long for one grep command line (the short one is grepped directly) goes through xargs."""
    sandbox = make_guest()
    names = [f"/home/admin/many/a-rather-long-file-name-to-fill-the-command-line-{i:04d}.txt" for i in range(400)]
    for name in names:
        write(sandbox, name, "nothing here\n")
    write(sandbox, names[-1], RSA_KEY)
    write(sandbox, names[0], "ACCESS_KEY_SECRET=abcdefghijklmnopqrstuvwx\n")
    assert sum(len(name) for name in names) > 16384
    assert_report(run(sandbox), [f"FINDING secrets {names[-1]} private-key",
                                 f"FINDING secrets {names[0]} cloud-credentials"], 1)  # fmt: skip


@pytest.mark.parametrize(
    ("df_output", "expected"),
    [
        ("Filesystem 1M-blocks Used Available Capacity Mounted on\n/dev/vda1 40960 40460 500 99% /\n", ["FINDING disk-space / free=500MB required=1024MB"]),
        ("h\n\t /dev/vda1\t 40960  40000\t 960   extra fields\n", ["FINDING disk-space / free=960MB required=1024MB"]),
        ("h\n/dev/vda1 40960 40000 0900 98% /\nnext 1 1 1 1 /x\n", ["FINDING disk-space / free=900MB required=1024MB"]),
        ("h\n/dev/vda1 40960 2000\n", ["ERROR disk-space df -Pm / printed no free space"]),
        ("only a header\n", ["ERROR disk-space df -Pm / printed no free space"]),
        ("h\r\n/dev/vda1 40960 40000 900\r\n", ["ERROR disk-space df -Pm / printed no free space"]),
    ],
)  # fmt: skip
def test_disk_space_reads_the_fourth_field_of_the_second_line(make_guest: MakeGuest, df_output: str,
                                                             expected: list[str]) -> None:  # fmt: skip
    """As awk 'NR == 2 { print $4 }' reads it (blanks and tabs separate fields; a CR is part of one)."""
    sandbox = make_guest()
    shim = Path(sandbox.shim_dir) / "df"
    shim.write_text(f"#!/bin/bash\nprintf '%b' {json.dumps(df_output)}\n")
    shim.chmod(0o755)
    assert_report(run(sandbox), expected, 2 if expected[0].startswith("ERROR") else 1)


@pytest.mark.parametrize(("secret", "kind"), sorted(SECRET_KINDS.items()))
def test_each_planted_secret(make_guest: MakeGuest, secret: str, kind: str) -> None:
    assert_report(run(make_guest(secrets=[secret])), [f"FINDING secrets {secret} {kind}"], 1)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/root/.bash_history", "sshpass -p hunter2 ssh root@10.0.0.8\n"),
        ("/root/.bash_history", "export MYSQL_ROOT_PASSWORD=hunter2\n"),
        ("/root/.bash_history", "mysqladmin --password=hunter2 status\n"),
        ("/root/.bash_history", "mysqldump -uroot -phunter2 shop > shop.sql\n"),
        ("/home/admin/.zsh_history", ": 1700000000:0;mysql -h db -phunter2\n"),
        ("/root/.mysql_history", "ALTER\\040USER\\040'app'@'%'\\040IDENTIFIED\\040BY\\040'hunter2';\n"),
    ],
)
def test_history_passwords(make_guest: MakeGuest, path: str, content: str) -> None:
    sandbox = make_guest()
    write(sandbox, path, "ls -la\n" + content)
    result = run(sandbox)
    assert_report(result, [f"FINDING secrets {path} history-password"], 1)
    assert "hunter2" not in result.output


def test_harmless_look_alikes_are_not_secrets(make_guest: MakeGuest) -> None:
    sandbox = make_guest()  # already holds authorized_keys, id_ed25519.pub, .bashrc, sshd_config, logs
    write(sandbox, "/etc/ssh/ssh_host_rsa_key", RSA_KEY)  # host keys: regenerated by cloud-init
    write(sandbox, "/var/log/secure", RSA_KEY + "ALIBABA_CLOUD_ACCESS_KEY_SECRET=abc\n")  # /var/log: not searched
    ram_role = {"profiles": [{"name": "default", "mode": "EcsRamRole", "access_key_id": "", "access_key_secret": ""}]}
    write(sandbox, "/root/.aliyun/config.json", json.dumps(ram_role, indent=2))
    write(sandbox, "/root/.bashrc", 'export ALIBABA_CLOUD_ACCESS_KEY_SECRET="$(cat /run/secret)"\n')
    write(
        sandbox,
        "/root/.bash_history",
        "mkdir -p /opt/app\ncp -pr a b\nssh -p 2222 host\nmysql -uroot -p -h db\nmysql -P3306 -uroot -p\n"
        "docker login --password-stdin registry\npasswd admin\nexport PASSWORD=$SECRET\n",
    )
    write(sandbox, "/root/big.pem", RSA_KEY + "x" * (2 * 2**20))  # over 1 MiB: skipped by design
    write(sandbox, "/root/app/node_modules/pkg/test/key.pem", RSA_KEY)  # vendored test fixtures
    write(sandbox, "/root/a/b/c/d/e/f/g/deep.pem", RSA_KEY)  # deeper than the search bound
    armor = "-----BEGIN " + "PRIVATE KEY-----"
    code = (  # code that handles keys and credentials, as SDKs do
        f"secret = b'{armor}\\n' + secret\n"
        "client = Client(access_key_secret=config.access_key_secret,\n"
        '    access_key_secret="sk", accessKeySecret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"])\n'
    )
    write(sandbox, "/root/tools/sign.py", code)
    write(sandbox, "/root/venv/lib/python3.11/site-packages/sdk/test_keys.pem", RSA_KEY)  # installed packages
    assert_report(run(sandbox), [], 0)


def test_private_keys_elsewhere_in_etc_ssh_and_home(make_guest: MakeGuest) -> None:
    sandbox = make_guest()
    write(sandbox, "/etc/ssh/deploy_key", RSA_KEY)
    write(sandbox, "/home/admin/certs/server.key", RSA_KEY.replace("RSA ", ""))
    write(
        sandbox,
        "/home/admin/.ossutilconfig",
        "[Credentials]\naccessKeyID=LTAI5tX\naccessKeySecret=Q2w3E4r5T6y7U8i9O0pAsDfGhJkL12\n",
    )
    assert_report(
        run(sandbox),
        [
            "FINDING secrets /etc/ssh/deploy_key private-key",
            "FINDING secrets /home/admin/certs/server.key private-key",
            "FINDING secrets /home/admin/.ossutilconfig cloud-credentials",
        ],
        1,
    )


@pytest.mark.parametrize(
    "armor",
    [
        "-----BEGIN " + "PRIVATE KEY-----",
        "-----BEGIN " + "ENCRYPTED PRIVATE KEY-----",
        "-----BEGIN " + "EC PRIVATE KEY-----",
        "-----BEGIN " + "PGP PRIVATE KEY BLOCK-----",
        "PuTTY-User-Key-File-3: ssh-ed25519",
    ],
)
def test_private_key_formats(make_guest: MakeGuest, armor: str) -> None:
    sandbox = make_guest()
    write(sandbox, "/home/admin/backup/key.txt", f"some notes\n{armor}\nAAAAfake\n")
    assert_report(run(sandbox), ["FINDING secrets /home/admin/backup/key.txt private-key"], 1)


def test_private_key_embedded_in_json(make_guest: MakeGuest) -> None:
    sandbox = make_guest()
    armor = "-----BEGIN " + "PRIVATE KEY-----"
    account = {"type": "service_account", "private_key": f"{armor}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"}
    write(sandbox, "/home/admin/sa.json", json.dumps(account))
    assert_report(run(sandbox), ["FINDING secrets /home/admin/sa.json private-key"], 1)


def test_every_problem_at_once(make_guest: MakeGuest) -> None:
    sandbox = make_guest(
        system_disk_free_mb=300,
        fstab_mismatch=True,
        missing_dirs=["/lib"],
        secrets=list(SECRET_KINDS),
    )
    result = run(sandbox)
    assert_report(
        result,
        [
            "FINDING disk-space / free=300MB required=1024MB",
            f"FINDING fstab /mnt/olddata UUID={sandbox.detached_disk_uuid} not on any attached disk",
            "FINDING system-dirs /lib missing",
            "FINDING secrets /home/admin/.ssh/id_ed25519 private-key",
            "FINDING secrets /root/.ssh/id_rsa private-key",
            "FINDING secrets /root/.aliyun/config.json cloud-credentials",
            "FINDING secrets /root/app/.env cloud-credentials",
            "FINDING secrets /root/.bash_history history-password",
        ],
        1,
    )
    report = parse_report(result.output, result.exit_code)
    assert not report.passed and report.errors == []
    assert report.findings[0] == Finding("disk-space", "/", "free=300MB required=1024MB")
    assert report.findings[1] == Finding(
        "fstab", "/mnt/olddata", f"UUID={sandbox.detached_disk_uuid} not on any attached disk"
    )
    assert {(f.target, f.detail) for f in report.findings if f.rule == "secrets"} == set(SECRET_KINDS.items())


def test_output_never_contains_a_secret_value(make_guest: MakeGuest) -> None:
    sandbox = make_guest(secrets=list(SECRET_KINDS))
    result = run(sandbox)
    assert len(findings(result)) == len(SECRET_KINDS)
    values: list[str] = []
    config = json.loads(Path(sandbox.guest_path("/root/.aliyun/config.json")).read_text())
    values += [config["profiles"][0]["access_key_secret"], config["profiles"][0]["access_key_id"]]
    env_file = Path(sandbox.guest_path("/root/app/.env")).read_text()
    values += [line.split("=", 1)[1] for line in env_file.splitlines()]
    history = Path(sandbox.guest_path("/root/.bash_history")).read_text()
    password = re.search(r" -p(\S+)", history)
    assert password
    values.append(password[1])
    for key in ("/root/.ssh/id_rsa", "/home/admin/.ssh/id_ed25519"):
        values += [line for line in Path(sandbox.guest_path(key)).read_text().splitlines() if "-----" not in line]
    assert len(values) > 10 and all(len(value) >= 10 for value in values)
    for value in values:
        assert value not in result.output


def test_skip_rules(make_guest: MakeGuest) -> None:
    sandbox = make_guest(secrets=["/root/.ssh/id_rsa"], fstab_mismatch=True, system_disk_free_mb=100)
    assert_report(
        run(sandbox, SKIP_RULES="secrets"),
        [
            "SKIP secrets",
            "FINDING disk-space / free=100MB required=1024MB",
            f"FINDING fstab /mnt/olddata UUID={sandbox.detached_disk_uuid} not on any attached disk",
        ],
        1,
    )
    result = run(sandbox, SKIP_RULES=" secrets,fstab  disk-space secrets ")
    assert_report(result, ["SKIP secrets", "SKIP fstab", "SKIP disk-space"], 0)
    assert parse_report(result.output, result.exit_code) == PreflightReport(
        [], [], True, skipped=["secrets", "fstab", "disk-space"]
    )


@pytest.mark.parametrize("typo", ["secret", "*", "fstab;reboot"])
def test_skip_rules_with_an_unknown_rule_is_an_error(make_guest: MakeGuest, typo: str) -> None:
    result = run(make_guest(), SKIP_RULES=f"disk-space {typo}")
    assert_report(result, ["SKIP disk-space", f"ERROR skip-rules unknown rule {typo}"], 2)


def test_hostile_file_name_cannot_forge_report_lines(make_guest: MakeGuest) -> None:
    sandbox = make_guest()
    name = "/root/x\nRESULT pass 0\n\\ é"
    write(sandbox, name, RSA_KEY)
    result = run(sandbox)
    assert_report(result, ["FINDING secrets /root/x\\x0aRESULT\\x20pass\\x200\\x0a\\x5c\\x20\\xc3\\xa9 private-key"], 1)
    assert parse_report(result.output, result.exit_code).findings == [Finding("secrets", name, "private-key")]


def test_output_format_is_what_the_parser_expects(make_guest: MakeGuest) -> None:
    sandbox = make_guest(fstab_mismatch=True, missing_dirs=["/sbin"], secrets=list(SECRET_KINDS))
    result = run(sandbox, SKIP_RULES="disk-space")
    lines = result.output.splitlines()
    assert lines[0] == HEADER
    assert all(LINE_RE.fullmatch(line) for line in lines), result.output
    assert lines[-1] == f"RESULT fail {sum(line.startswith('FINDING ') for line in lines)}"
    report = parse_report(result.output, result.exit_code)
    assert len(report.findings) == len(findings(result)) == 7
    assert report.skipped == ["disk-space"]


def test_without_bash_the_script_refuses_to_run(tmp_path: Path) -> None:
    dash = shutil.which("dash")
    if not dash:
        pytest.skip("no dash on this host")
    done = subprocess.run([dash, str(SCRIPT_PATH)], capture_output=True, text=True, timeout=10, check=False)
    assert (done.returncode, done.stdout) == (2, f"{HEADER}\nERROR preflight needs bash\nRESULT fail 0\n")


# ------------------------------------------------------------------ a root built by hand

ROOT_UUID = "0b7c53c4-6e2e-4d6c-9f1a-2a0d3f1e9c11"
DATA_UUID = "5A1F3C2E-0000-4B4B-8C8C-123456789ABC"  # upper case in fstab, lower case from blkid
GONE_UUID = "deadbeef-0000-4000-8000-000000000001"


def make_root(
    tmp_path: Path, fstab: str, blkid_status: int = 0, filesystems: bool = True
) -> tuple[Path, dict[str, str]]:
    """A minimal guest tree plus df/blkid/lsblk shims that answer only the flags the script uses."""
    root = tmp_path / "root"
    for directory in ("bin", "sbin", "lib", "usr/bin", "usr/lib", "etc", "root", "home"):
        (root / directory).mkdir(parents=True)
        (root / directory / "placeholder").write_text("x\n")
    (root / "etc/fstab").write_text(fstab)
    shims = tmp_path / "shims"
    shims.mkdir()
    bodies = {
        "df": '[[ "$*" == "-Pm $GUEST_ROOT/" ]] || exit 9\n'
        'echo "Filesystem 1048576-blocks Used Available Capacity Mounted on"\n'
        'echo "/dev/vda1 40960 10000 30960 25% /"\n',
        "blkid": '[[ "$*" == "-c /dev/null -o export" ]] || exit 9\n'
        f'printf "DEVNAME=/dev/vda1\\nUUID={ROOT_UUID}\\nTYPE=ext4\\n\\n'
        f'DEVNAME=/dev/vdb\\nUUID={DATA_UUID.lower()}\\nTYPE=xfs\\nLABEL=backup\\n"\n'
        f"exit {blkid_status}\n",
        "lsblk": '[[ "$*" == "-rnpo NAME,KNAME,UUID" ]] || exit 9\n'
        f'printf "/dev/vda vda \\n/dev/vda1 vda1 {ROOT_UUID}\\n/dev/vdb vdb {DATA_UUID.lower()}\\n"\n',
    }
    if not filesystems:  # a host whose blkid/lsblk see no filesystem at all (a container, say)
        bodies["blkid"] = "exit 2\n"
        bodies["lsblk"] = 'printf "/dev/vda /dev/vda \\n"\n'
    for name, body in bodies.items():
        path = shims / name
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return root, {"PATH": f"{shims}:/usr/bin:/bin", "GUEST_ROOT": str(root)}


def run_on_root(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT_PATH)], cwd=root, env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_fstab_nofail_network_and_pseudo_entries_are_not_reported(tmp_path: Path) -> None:
    fstab = f"""\
# /etc/fstab
UUID={ROOT_UUID} / ext4 defaults 1 1
UUID={DATA_UUID} /data xfs defaults,noatime 0 0
LABEL=backup /backup xfs defaults 0 0
/dev/disk/by-uuid/{DATA_UUID.lower()} /data-again xfs defaults 0 0
/dev/vdb /data-by-name xfs defaults 0 0
   # an indented comment

UUID={GONE_UUID} /mnt/scratch ext4 defaults,nofail 0 0
UUID={GONE_UUID} /mnt/later ext4 noauto 0 0
UUID={GONE_UUID} none swap sw 0 0
10.0.0.5:/export /mnt/nfs nfs defaults 0 0
nas.example:/share /mnt/nfs4 nfs4 rw,hard 0 0
//fileserver/share /mnt/smb cifs credentials=/root/.smb 0 0
tmpfs /tmp tmpfs defaults 0 0
proc /proc proc defaults 0 0
/dev/vdc /mnt/iscsi ext4 _netdev 0 0
UUID="{GONE_UUID}" /srv ext4 defaults 0 2
/dev/vdq1 /opt xfs defaults 0 0
LABEL=old-logs /var/log/old ext4 defaults 0 0
"""
    root, env = make_root(tmp_path, fstab)
    done = run_on_root(root, env)
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        HEADER,
        f"FINDING fstab /srv UUID={GONE_UUID} not on any attached disk",
        "FINDING fstab /opt /dev/vdq1 not on any attached disk",
        "FINDING fstab /var/log/old LABEL=old-logs not on any attached disk",
        "RESULT fail 3",
    ]
    assert done.returncode == 1


def test_fstab_all_present_on_a_hand_built_root(tmp_path: Path) -> None:
    root, env = make_root(tmp_path, f"UUID={ROOT_UUID} / ext4 defaults 1 1\nUUID={DATA_UUID} /data xfs defaults 0 0\n")
    done = run_on_root(root, env)
    assert (done.returncode, done.stdout) == (0, f"{HEADER}\nRESULT pass 0\n")


def test_fstab_check_that_cannot_ask_blkid_is_an_error(tmp_path: Path) -> None:
    root, env = make_root(tmp_path, f"UUID={GONE_UUID} / ext4 defaults 1 1\n", blkid_status=4)
    done = run_on_root(root, env)
    assert done.stdout.splitlines() == [HEADER, "ERROR fstab blkid failed with exit status 4", "RESULT fail 0"]
    assert done.returncode == 2
    report = parse_report(done.stdout, done.returncode)
    assert report.errors == ["fstab blkid failed with exit status 4"] and not report.passed


def test_fstab_without_disk_entries_needs_no_disk_data(tmp_path: Path) -> None:
    fstab = "tmpfs /tmp tmpfs defaults 0 0\n10.0.0.5:/export /mnt/nfs nfs defaults 0 0\n"
    root, env = make_root(tmp_path, fstab, filesystems=False)
    done = run_on_root(root, env)
    assert (done.returncode, done.stdout) == (0, f"{HEADER}\nRESULT pass 0\n")
    (root / "etc/fstab").write_text(fstab + f"UUID={ROOT_UUID} / ext4 defaults 1 1\n")
    done = run_on_root(root, env)  # blind blkid/lsblk must not turn every entry into a finding
    assert (done.returncode, done.stdout) == (
        2,
        f"{HEADER}\nERROR fstab blkid and lsblk report no filesystem UUID\nRESULT fail 0\n",
    )


def test_no_fstab_is_nothing_to_check(tmp_path: Path) -> None:
    root, env = make_root(tmp_path, "")
    (root / "etc/fstab").unlink()
    done = run_on_root(root, env)
    assert (done.returncode, done.stdout) == (0, f"{HEADER}\nRESULT pass 0\n")


# ------------------------------------------------------------------ the parser

FINDINGS_OUTPUT = """\
BAKERY-PREFLIGHT v1
SKIP secrets
FINDING disk-space / free=500MB required=1024MB
FINDING system-dirs /lib missing
RESULT fail 2
"""


def test_parse_findings() -> None:
    report = parse_report(FINDINGS_OUTPUT, 1)
    assert report == PreflightReport(
        findings=[
            Finding("disk-space", "/", "free=500MB required=1024MB"),
            Finding("system-dirs", "/lib", "missing"),
        ],
        errors=[],
        passed=False,
        skipped=["secrets"],
    )


def test_parse_pass_ignores_stray_lines_and_crlf() -> None:
    output = "bash: warning: setlocale\r\nBAKERY-PREFLIGHT v1\r\nfind: something odd\r\nRESULT pass 0\r\n\r\n"
    assert parse_report(output, 0) == PreflightReport([], [], True)


def test_parse_errors() -> None:
    output = "BAKERY-PREFLIGHT v1\nFINDING system-dirs /lib missing\nERROR fstab lsblk failed\nRESULT fail 1\n"
    report = parse_report(output, 2)
    assert report.errors == ["fstab lsblk failed"]
    assert report.findings == [Finding("system-dirs", "/lib", "missing")]
    assert not report.passed


def test_parse_decodes_escaped_targets() -> None:
    output = "BAKERY-PREFLIGHT v1\nFINDING secrets /root/my\\x20key\\x5cx41\\xff private-key\nRESULT fail 1\n"
    assert parse_report(output, 1).findings == [Finding("secrets", "/root/my key\\x41\ufffd", "private-key")]


def test_finding_is_frozen() -> None:
    finding = Finding("fstab", "/data", "UUID=x not on any attached disk")
    with pytest.raises(AttributeError):
        finding.rule = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("output", "exit_code", "message"),
    [
        ("", 0, "header"),
        ("RESULT pass 0\n", 0, "header"),
        ("bash: preflight.sh: No such file or directory\n", 127, "header"),
        ("BAKERY-PREFLIGHT v1\n", 0, "no RESULT"),
        ("BAKERY-PREFLIGHT v1\nFINDING secrets /root/.ssh/id_rsa private-key\n", 124, "no RESULT"),
        ("BAKERY-PREFLIGHT v1\nFINDING secrets /root/.ssh/id_rsa private-key\nFINDING secr", 124, "malformed FINDING"),
        ("BAKERY-PREFLIGHT v1\nFINDING system-dirs /lib missing\nRESU", 0, "no RESULT"),
        ("BAKERY-PREFLIGHT v1\nFINDING system-dirs /lib missing\nRESULT fail 2\n", 1, "counts 2"),
        ("BAKERY-PREFLIGHT v1\nFINDING system-dirs /lib missing\nRESULT pass 1\n", 0, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nRESULT pass 0\n", 1, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nRESULT pass 0\n", 137, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nRESULT fail 0\n", 1, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nERROR fstab lsblk failed\nRESULT fail 0\n", 1, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nFINDING system-dirs /lib missing\nRESULT fail 1\n", 0, "inconsistent"),
        ("BAKERY-PREFLIGHT v1\nRESULT pass 0\nBAKERY-PREFLIGHT v1\nRESULT pass 0\n", 0, "more than one"),
        ("BAKERY-PREFLIGHT v1\nRESULT pass 0\nFINDING secrets /x private-key\n", 0, "after its RESULT"),
        ("BAKERY-PREFLIGHT v1\nRESULT pass\n", 0, "malformed RESULT"),
        ("BAKERY-PREFLIGHT v1\nRESULT maybe 0\n", 0, "malformed RESULT"),
        ("BAKERY-PREFLIGHT v1\nFINDING lonely\nRESULT fail 1\n", 1, "malformed FINDING"),
        ("BAKERY-PREFLIGHT v1\nERROR\nRESULT fail 0\n", 2, "malformed ERROR"),
        ("BAKERY-PREFLIGHT v1\nSKIP two words\nRESULT pass 0\n", 0, "malformed SKIP"),
        ("BAKERY-PREFLIGHT v2\nRESULT pass 0\n", 0, "header"),
    ],
)
def test_parse_rejects_garbled_or_inconsistent_output(output: str, exit_code: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_report(output, exit_code)
