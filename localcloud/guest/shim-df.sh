# Flags: -P/--portability, -k, -m, -h/--human-readable, -T/--print-type, -a, -l,
# --output[=source,fstype,size,used,avail,pcent,target], then optional paths.
# Paths are guest paths or paths under $GUEST_ROOT.
TOOL=df
unit=k posix=0 show_type=0 output_fields="" paths=()
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) paths+=("$@"); break ;;
    --portability) posix=1 ;;
    --human-readable) unit=h ;;
    --print-type) show_type=1 ;;
    --all | --local) ;;
    --output) output_fields=source,fstype,size,used,avail,pcent,target ;;
    --output=*) output_fields=${arg#--output=} ;;
    --*) unsupported "$arg" ;;
    -?*)
        for ((i = 1; i < ${#arg}; i++)); do
            case ${arg:i:1} in
            P) posix=1 ;;
            k) unit=k ;;
            m) unit=m ;;
            h) unit=h ;;
            T) show_type=1 ;;
            a | l) ;;
            *) unsupported "-${arg:i:1}" ;;
            esac
        done
        ;;
    *) paths+=("$arg") ;;
    esac
done
if [[ -n $output_fields ]] && ((posix || show_type)); then
    echo "df: options --output and -P/-T are mutually exclusive" >&2
    exit 1
fi

# mount_index PATH: sets MOUNT_INDEX to the mount holding PATH; fails if PATH does not exist.
mount_index() {
    local path=$1 host guest target i best_len=-1
    [[ $path == /* ]] || path="$PWD/$path"
    host=$GUEST_ROOT_DIR$path
    if [[ $path == "$GUEST_ROOT_DIR" || $path == "$GUEST_ROOT_DIR"/* ]]; then host=$path; fi
    [[ -e $host ]] || return 1
    # The guest's root itself (what `df /` asks, every preflight) is already canonical: no realpath process.
    if [[ ($host == "$GUEST_ROOT_DIR" || $host == "$GUEST_ROOT_DIR/") && ! -L $GUEST_ROOT_DIR ]]; then
        host=$GUEST_ROOT_DIR
    else
        host=$(realpath -m -- "$host")
    fi
    guest=/
    if [[ $host == "$GUEST_ROOT_DIR"/* ]]; then guest=${host#"$GUEST_ROOT_DIR"}; fi
    for i in "${!MNT_TARGET[@]}"; do
        target=${MNT_TARGET[i]}
        [[ $target == / || $guest == "$target" || $guest == "$target"/* ]] || continue
        if ((${#target} > best_len)); then
            MOUNT_INDEX=$i
            best_len=${#target}
        fi
    done
}

status=0 rows=()
if ((${#paths[@]} == 0)); then
    rows=("${!MNT_TARGET[@]}")
else
    for path in "${paths[@]}"; do
        if mount_index "$path"; then
            rows+=("$MOUNT_INDEX")
        else
            echo "df: $path: No such file or directory" >&2
            status=1
        fi
    done
fi
((${#rows[@]})) || exit "$status"

# Headers as GNU df prints them: POSIX mode names the block size, --output abbreviates "Avail".
case $unit in
k) blocks_header=1K-blocks posix_blocks_header=1024-blocks ;;
m) blocks_header=1M-blocks posix_blocks_header=1048576-blocks ;;
h) blocks_header=Size posix_blocks_header=Size ;;
esac
((posix)) && blocks_header=$posix_blocks_header
avail_header=Available pcent_header=Use%
[[ $unit == h || -n $output_fields ]] && avail_header=Avail
((posix)) && [[ $unit != h ]] && pcent_header=Capacity
size_of() { local -n values="MNT_$1_${unit^^}"; CELL=${values[$2]}; }

if [[ -z $output_fields ]]; then
    output_fields=source
    ((show_type)) && output_fields+=,fstype
    output_fields+=,size,used,avail,pcent,target
fi
IFS=, read -r -a fields <<<"$output_fields"
TABLE=() align=""
for field in "${fields[@]}"; do
    case $field in
    source) TABLE+=(Filesystem) align+=L ;;
    fstype) TABLE+=(Type) align+=L ;;
    size) TABLE+=("$blocks_header") align+=R ;;
    used) TABLE+=(Used) align+=R ;;
    avail) TABLE+=("$avail_header") align+=R ;;
    pcent) TABLE+=("$pcent_header") align+=R ;;
    target) TABLE+=("Mounted on") align+=L ;;
    *) unsupported "--output field '$field'" ;;
    esac
done
for row in "${rows[@]}"; do
    for field in "${fields[@]}"; do
        case $field in
        source) TABLE+=("${MNT_SOURCE[row]}") ;;
        fstype) TABLE+=("${MNT_FSTYPE[row]}") ;;
        size) size_of SIZE "$row"; TABLE+=("$CELL") ;;
        used) size_of USED "$row"; TABLE+=("$CELL") ;;
        avail) size_of AVAIL "$row"; TABLE+=("$CELL") ;;
        pcent) TABLE+=("${MNT_PCENT[row]}") ;;
        target) TABLE+=("${MNT_TARGET[row]}") ;;
        esac
    done
done
print_table "$align"
exit "$status"
