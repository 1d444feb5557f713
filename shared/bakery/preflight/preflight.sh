#!/bin/bash
# shellcheck disable=SC2317 # the check_* functions are called by name
# Bakery preflight: checks an ECS instance before it is turned into a custom image.
# Cloud Assistant runs it as root under bash. Every guest path is prefixed with ${GUEST_ROOT:-}:
# the localcloud emulator points it at a fake root; on a real instance it is unset.
#
# Output on stdout, one item per line (parsed by bakery.preflight.report):
#   BAKERY-PREFLIGHT v1
#   SKIP <rule>                          a rule turned off through SKIP_RULES
#   FINDING <rule> <target> <detail>     something a person has to fix in <target>
#   ERROR <rule> <why>                   a check that could not run
#   RESULT pass|fail <number of FINDING lines>
# Targets and anything read from the guest are printed as printable ASCII: other bytes (and "\")
# become \xHH, so a hostile file name cannot forge a line. Secret contents are never printed.
# Exit status: 0 no findings, 1 findings, 2 a check could not run (ERROR lines).
# Environment: MIN_FREE_MB (default 1024), SKIP_RULES (rules to skip, space or comma separated).
[ -n "${BASH_VERSION:-}" ] || { printf 'BAKERY-PREFLIGHT v1\nERROR preflight needs bash\nRESULT fail 0\n' && exit 2; }
set -u -o pipefail
export LC_ALL=C # byte-wise grep, sort and escaping, whatever the guest's locale
G=${GUEST_ROOT:-}
RULES="disk-space fstab system-dirs secrets"
findings=0 errors=0

esc() { # esc TEXT: sets E to TEXT with bytes outside printable ASCII, and "\", as \xHH
    local s=$1 c i
    E=""
    if [[ $s != *[^[:graph:]]* && $s != *\\* ]]; then E=$s && return; fi
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        if [[ $c == [[:graph:]] && $c != \\ ]]; then E+=$c; else printf -v c '\\x%02x' "'$c" && E+=$c; fi
    done
}
finding() { # finding RULE TARGET DETAIL (DETAIL already escaped)
    esc "${2:--}" # a field never empty: the line must keep its shape
    echo "FINDING $1 $E $3"
    findings=$((findings + 1))
}
error() { echo "ERROR $1 $2" && errors=$((errors + 1)); }

check_disk_space() {
    local min=${MIN_FREE_MB:-1024} out free
    if [[ ! $min =~ ^[0-9]{1,9}$ ]]; then esc "$min" && error disk-space "MIN_FREE_MB=$E is not a number of MB" && return; fi
    out=$(df -Pm "$G/" 2>&1) || { error disk-space "df -Pm / failed" && return; }
    # The 4th field of the 2nd line (awk 'NR == 2 { print $4 }', without a process of its own).
    free="" && { read -r _ && read -r _ _ _ free _; } <<<"$out"
    [[ $free =~ ^[0-9]+$ ]] || { error disk-space "df -Pm / printed no free space" && return; }
    # 10#: a leading zero must not make bash read the number as octal.
    if ((10#$free < 10#$min)); then finding disk-space / "free=$((10#$free))MB required=$((10#$min))MB"; fi
}

norm() { # norm SPEC: sets K to SPEC, with UUID=/PARTUUID= values in lower case (blkid's spelling)
    local tag=${1%%=*} value=${1#*=}
    K=$1
    if [[ $1 == *=* && $tag =~ ^(PART)?UUID$ ]]; then K=$tag=${value,,}; fi
}

check_fstab() {
    local fstab=$G/etc/fstab known=$'\n' entries=() out st line name kname uuid spec mnt type opts real i
    [[ -e $fstab ]] || return 0 # no fstab mounts nothing, so nothing in it can be missing
    [[ -r $fstab ]] || { error fstab "cannot read /etc/fstab" && return; }
    while read -r spec mnt type opts _; do # entries: key, mountpoint, spec as written
        [[ -z $spec || $spec == \#* ]] && continue
        # Pseudo and network filesystems live on no disk; a missing swap only delays boot.
        case $type in swap | tmpfs | proc | sysfs | devpts | devtmpfs | nfs* | cifs | smb* | fuse* | cgroup* | none | \
            securityfs | debugfs | efivarfs | hugetlbfs | mqueue | autofs) continue ;; esac
        # nofail/noauto: boot goes on without it; _netdev: a network block device; bind: a directory.
        [[ ,${opts:-defaults}, =~ ,(nofail|noauto|_netdev|bind|rbind), ]] && continue
        spec=${spec//\"/}
        case $spec in
        /dev/disk/by-uuid/*) norm "UUID=${spec##*/}" ;; # udev's names for a tag
        /dev/disk/by-partuuid/*) norm "PARTUUID=${spec##*/}" ;;
        /dev/disk/by-label/*) K=LABEL=${spec##*/} ;;
        UUID=* | PARTUUID=* | LABEL=* | /dev/*) norm "$spec" ;;
        *) continue ;; # server:/export, //host/share, overlay...: not an attached disk
        esac
        entries+=("$K" "$mnt" "$spec")
    done <"$fstab"
    ((${#entries[@]})) || return 0
    # What the attached disks carry. blkid probes the devices (-c /dev/null: no stale cache), lsblk
    # asks udev; a filesystem either of them sees is present.
    out=$(blkid -c /dev/null -o export 2>/dev/null)
    st=$? # 2: blkid found nothing, which the UUID test below catches
    ((st == 0 || st == 2)) || { error fstab "blkid failed with exit status $st" && return; }
    while IFS= read -r line; do
        case $line in
        UUID=* | PARTUUID=* | LABEL=*) norm "$line" && known+="$K"$'\n' ;;
        DEVNAME=*) known+="${line#DEVNAME=}"$'\n' ;;
        esac
    done <<<"$out"
    out=$(lsblk -rnpo NAME,KNAME,UUID 2>/dev/null) || { error fstab "lsblk failed" && return; }
    while read -r name kname uuid; do
        [[ $kname == /* ]] || kname=/dev/$kname
        known+="$name"$'\n'"$kname"$'\n'
        [[ -n $uuid ]] && norm "UUID=$uuid" && known+="$K"$'\n'
    done <<<"$out"
    [[ $known == *$'\n'UUID=* ]] || { error fstab "blkid and lsblk report no filesystem UUID" && return; }
    for ((i = 0; i < ${#entries[@]}; i += 3)); do
        K=${entries[i]}
        [[ $known == *$'\n'"$K"$'\n'* ]] && continue
        # /dev/vg/root and the like are symlinks to a kernel name (dm-0) that lsblk lists.
        if [[ $K == /dev/* ]] && real=$(readlink -f -- "$G$K" 2>/dev/null) &&
            [[ $known == *$'\n'"${real#"$G"}"$'\n'* ]]; then continue; fi
        esc "${entries[i + 2]}"
        finding fstab "${entries[i + 1]}" "$E not on any attached disk"
    done
}

has_entries() { # has_entries DIR/: DIR lists an entry, seen by a glob (no process), where find would list it too
    local entries off=()
    [[ -r $1 && -x $1 && -x . ]] || return 1 # find also fails where it cannot return to the working directory
    shopt -q nullglob || off+=(nullglob)
    shopt -q dotglob || off+=(dotglob)
    shopt -s nullglob dotglob
    entries=("$1"*)
    ((${#off[@]} == 0)) || shopt -u "${off[@]}" # the shell's options as they were
    ((${#entries[@]}))
}
check_system_dirs() {
    local dir out
    for dir in /bin /sbin /lib /usr/bin /usr/lib /etc; do
        if [[ ! -e $G$dir ]]; then finding system-dirs "$dir" missing && continue; fi # also a dangling symlink
        if [[ ! -d $G$dir ]]; then finding system-dirs "$dir" not-a-directory && continue; fi
        has_entries "$G$dir/" && continue # else find tells an empty directory from one it cannot list
        out=$(find "$G$dir/" -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null) || { error system-dirs "cannot list $dir" && continue; }
        [[ -n $out ]] || finding system-dirs "$dir" empty
    done
}

# Files are matched with grep -l only: a secret's value never reaches the output. Case matters:
# -P3306 (mysql's port) is not -pSECRET. Source code that merely handles keys must not match, so
# a key's armor must open a line (or be followed by an escaped newline and base64, as in JSON).
KEY_RE='^[[:space:]]*-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----|-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----\\n[A-Za-z0-9+/]{16}|^PuTTY-User-Key-File-[0-9]+:'
# A key name with a literal value shaped like an AccessKey secret (20+ letters and digits), not
# "", $VAR or config.access_key_secret.
CLOUD_RE='([Aa]ccess_?[Kk]ey_?[Ss]ecret|ACCESS_KEY_SECRET|ALICLOUD_SECRET_KEY)["'\'']?[[:space:]]*[:=][[:space:]]*["'\'']?[A-Za-z0-9]{20,}(["'\'',;}[:space:]]|$)'
# mysql -pSECRET (a bare -p, as in cp -p, counts only after a mysql client), --password SECRET,
# FOO_PASSWORD=SECRET, sshpass -p, and SQL in .mysql_history (which stores spaces as \040).
HISTORY_RE='(mysql[a-z]*|mariadb)[[:space:]].*[[:space:]]-p[^[:space:]]|--password[=[:space:]]+[^-[:space:]]|(PASSWORD|[Pp]assword)=[^[:space:]$]|sshpass[[:space:]]+-p|(IDENTIFIED|identified).{0,60}(BY|by)|(SET|set)(\\040|[[:space:]])+(PASSWORD|password)'
HISTORY_NAMES=" .bash_history .zsh_history .sh_history .mysql_history .psql_history "

matching() { # matching ERE FILE...: the files that match, NUL-separated, in the given order
    local re=$1 all && shift
    all="$*"
    # A short list fits one command line: grep it directly; xargs splits a long one.
    if (($# && ${#all} <= 16384)); then
        grep -lsZE -e "$re" -- "$@" 2>/dev/null
    else
        (($#)) && printf '%s\0' "$@" | xargs -0 grep -lsZE -e "$re" -- 2>/dev/null
    fi
}
check_secrets() {
    local roots=() files=() histories=() dir f failed=0
    for dir in "$G/root" "$G/home" "$G/etc/ssh"; do [[ -d $dir ]] && roots+=("$dir"); done
    ((${#roots[@]})) || return 0
    # Bounded so it stays fast on a real root: depth 6, files up to 1 MiB, no VCS or installed packages.
    # Public keys are harmless. SSH host keys are left out on purpose: cloud-init deletes and
    # regenerates them on a new instance's first boot; only users' keys travel with the image.
    while IFS= read -r -d '' f; do
        if [[ $f == '!find-failed' ]]; then failed=1; else files+=("$f"); fi
    done < <({ find "${roots[@]}" -xdev -maxdepth 6 \( -name .git -o -name node_modules -o -name site-packages -o -name dist-packages \) -prune -o -type f \
        -size -1025k ! -name '*.pub' ! -name 'authorized_keys*' ! -name 'known_hosts*' \
        ! -path "$G/etc/ssh/ssh_host_*_key" -print0 2>/dev/null | sort -z; } || printf '!find-failed\0')
    ((failed)) && error secrets "find could not read everything under /root /home /etc/ssh"
    for f in ${files[@]+"${files[@]}"}; do [[ $HISTORY_NAMES == *" ${f##*/} "* ]] && histories+=("$f"); done
    while IFS= read -r -d '' f; do finding secrets "${f#"$G"}" private-key; done < <(
        matching "$KEY_RE" ${files[@]+"${files[@]}"})
    while IFS= read -r -d '' f; do finding secrets "${f#"$G"}" cloud-credentials; done < <(
        matching "$CLOUD_RE" ${files[@]+"${files[@]}"})
    while IFS= read -r -d '' f; do finding secrets "${f#"$G"}" history-password; done < <(
        matching "$HISTORY_RE" ${histories[@]+"${histories[@]}"})
}

echo "BAKERY-PREFLIGHT v1"
skip=" "
skip_rules=${SKIP_RULES:-}
read -r -a asked <<<"${skip_rules//,/ }" # read -a, not $SKIP_RULES unquoted: no globbing
for rule in ${asked[@]+"${asked[@]}"}; do
    if [[ " $RULES " != *" $rule "* ]]; then esc "$rule" && error skip-rules "unknown rule $E"
    elif [[ $skip != *" $rule "* ]]; then skip+="$rule " && echo "SKIP $rule"; fi
done
for rule in $RULES; do [[ $skip == *" $rule "* ]] || "check_${rule//-/_}"; done
if ((errors)); then status=2; elif ((findings)); then status=1; else status=0; fi
if ((status)); then echo "RESULT fail $findings"; else echo "RESULT pass $findings"; fi
exit "$status"
