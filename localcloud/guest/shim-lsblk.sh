# Flags: -r/--raw, -n/--noheadings, -d/--nodeps, -P/--pairs, -l/--list, -b/--bytes, -p/--paths,
# -f/--fs, -a/--all, -o/--output COLUMNS (a leading '+' adds to the defaults), then optional
# devices (/dev/vdb or vdb). Columns: NAME KNAME PATH PKNAME MAJ:MIN RM RO SIZE TYPE FSTYPE
# LABEL UUID PARTUUID PTTYPE PTUUID SERIAL MOUNTPOINT MOUNTPOINTS.
TOOL=lsblk
raw=0 pairs=0 headings=1 nodeps=0 bytes=0 full_paths=0 list=0 fs=0 columns="" devices=()
set_columns() { columns=$1; }
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) devices+=("$@"); break ;;
    --raw) raw=1 ;;
    --pairs) pairs=1 ;;
    --noheadings) headings=0 ;;
    --nodeps) nodeps=1 ;;
    --list) list=1 ;;
    --bytes) bytes=1 ;;
    --paths) full_paths=1 ;;
    --fs) fs=1 ;;
    --all) ;;
    --output=*) set_columns "${arg#--output=}" ;;
    --output) (($#)) || unsupported "--output without columns"; set_columns "$1"; shift ;;
    --*) unsupported "$arg" ;;
    -?*)
        for ((i = 1; i < ${#arg}; i++)); do
            case ${arg:i:1} in
            r) raw=1 ;;
            P) pairs=1 ;;
            n) headings=0 ;;
            d) nodeps=1 ;;
            l) list=1 ;;
            b) bytes=1 ;;
            p) full_paths=1 ;;
            f) fs=1 ;;
            a) ;;
            o)
                if ((i + 1 < ${#arg})); then
                    set_columns "${arg:i+1}"
                else
                    (($#)) || unsupported "-o without columns"
                    set_columns "$1"
                    shift
                fi
                break
                ;;
            *) unsupported "-${arg:i:1}" ;;
            esac
        done
        ;;
    *) devices+=("$arg") ;;
    esac
done

default_columns=NAME,MAJ:MIN,RM,SIZE,RO,TYPE,MOUNTPOINT
((fs)) && default_columns=NAME,FSTYPE,LABEL,UUID,MOUNTPOINT
if [[ -z $columns ]]; then
    columns=$default_columns
elif [[ $columns == +* ]]; then
    columns=$default_columns,${columns#+}
fi
IFS=, read -r -a column_list <<<"${columns^^}"
for column in "${column_list[@]}"; do
    case $column in
    NAME | KNAME | PATH | PKNAME | MAJ:MIN | RM | RO | SIZE | TYPE | FSTYPE | LABEL) ;;
    UUID | PARTUUID | PTTYPE | PTUUID | SERIAL | MOUNTPOINT | MOUNTPOINTS) ;;
    *) echo "lsblk: unknown column: $column" >&2; exit 1 ;;
    esac
done

device_index() {  # device_index NAME-or-/dev/NAME: sets DEVICE_INDEX
    local name=${1#/dev/} i
    for i in "${!DEV_NAME[@]}"; do
        if [[ ${DEV_NAME[i]} == "$name" ]]; then DEVICE_INDEX=$i; return 0; fi
    done
    return 1
}
rows=() status=0
add_with_children() {
    local i=$1 j
    rows+=("$i")
    ((nodeps)) && return
    for j in "${!DEV_NAME[@]}"; do
        [[ ${DEV_PARENT[j]} == "${DEV_NAME[i]}" ]] && rows+=("$j")
    done
}
if ((${#devices[@]} == 0)); then
    for i in "${!DEV_NAME[@]}"; do
        [[ ${DEV_TYPE[i]} == disk ]] && add_with_children "$i"
    done
else
    found=0
    for device in "${devices[@]}"; do
        if device_index "$device"; then
            found=1
            if [[ ${DEV_TYPE[DEVICE_INDEX]} == disk ]]; then
                add_with_children "$DEVICE_INDEX"
            else
                rows+=("$DEVICE_INDEX")
            fi
        else
            echo "lsblk: $device: not a block device" >&2
            status=64
        fi
    done
    ((found)) || exit 32
fi

cell_value() {  # cell_value COLUMN INDEX: sets CELL
    local i=$2
    case $1 in
    NAME)
        CELL=${DEV_NAME[i]}
        ((full_paths)) && CELL=/dev/$CELL
        if ((!raw && !pairs && !list)) && [[ -n ${DEV_PARENT[i]} ]]; then CELL="\`-$CELL"; fi
        ;;
    KNAME) CELL=${DEV_NAME[i]} ;;
    PATH) CELL=/dev/${DEV_NAME[i]} ;;
    PKNAME) CELL=${DEV_PARENT[i]} ;;
    MAJ:MIN) CELL=${DEV_MAJMIN[i]} ;;
    RM | RO) CELL=0 ;;
    SIZE) if ((bytes)); then CELL=${DEV_SIZE_BYTES[i]}; else CELL=${DEV_SIZE_HUMAN[i]}; fi ;;
    TYPE) CELL=${DEV_TYPE[i]} ;;
    FSTYPE) CELL=${DEV_FSTYPE[i]} ;;
    LABEL) CELL="" ;;
    UUID) CELL=${DEV_UUID[i]} ;;
    PARTUUID) CELL=${DEV_PARTUUID[i]} ;;
    PTTYPE) CELL=${DEV_PTTYPE[i]} ;;
    PTUUID) CELL=${DEV_PTUUID[i]} ;;
    SERIAL) CELL=${DEV_SERIAL[i]} ;;
    MOUNTPOINT | MOUNTPOINTS) CELL=${DEV_MOUNT[i]} ;;
    esac
}

if ((pairs)); then
    for row in "${rows[@]}"; do
        line=""
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            line+="${line:+ }$column=\"$CELL\""
        done
        printf '%s\n' "$line"
    done
elif ((raw)); then
    ((headings)) && (IFS=" "; printf '%s\n' "${column_list[*]}")
    for row in "${rows[@]}"; do
        line="" sep=""
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            line+="$sep${CELL// /\\x20}"
            sep=" "
        done
        printf '%s\n' "$line"
    done
else
    TABLE=() align=""
    for column in "${column_list[@]}"; do
        case $column in RM | RO | SIZE) align+=R ;; *) align+=L ;; esac
        ((headings)) && TABLE+=("$column")
    done
    for row in "${rows[@]}"; do
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            TABLE+=("$CELL")
        done
    done
    print_table "$align"
fi
exit "$status"
